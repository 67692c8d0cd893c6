"""The MixSize training loop for one data-parallel rank, independent of Ray.

:class:`TrainingLoop` builds data (schedule + one loader), model, optimizer, gradient smoothing and the LR
schedule from a :class:`~mixsize_ray.config.Config`, and trains epoch by epoch. Every step uses the
schedule's (S, B, D), identical on all ranks; each rank feeds B/world_size images times D views. At the
end of each epoch the sequence of (S, B*D) shapes each rank actually trained on is all-gathered and
compared (a mismatch raises), so "every rank used the same size every step" is checked, not assumed.

Ray Train's ``train_func`` (:mod:`mixsize_ray.train.worker`) wraps this with DDP, reporting and
checkpoints; the benchmark runs the same loop bare.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from mixsize_ray.config import Config
from mixsize_ray.core.calibration import BNStatsCache, unwrap
from mixsize_ray.core.loss import batch_augmentation_loss
from mixsize_ray.core.lr import BatchScaling, Decay, LRSchedule, Warmup
from mixsize_ray.core.regime import RegimeTable, regime_from_config
from mixsize_ray.core.schedule import StepSchedule
from mixsize_ray.core.smoothing import GradientSmoother
from mixsize_ray.core.weight_decay import param_groups
from mixsize_ray.models import build_model
from mixsize_ray.train.data_bundle import DataBundle
from mixsize_ray.train.epoch_sums import EpochSums, Reading, StepOutcome
from mixsize_ray.train.live_metrics import LiveMetrics, Progress, StepTiming
from mixsize_ray.train.precision import resolve as resolve_precision
from mixsize_ray.train.rng import rng_state, set_rng_state

LOG_EVERY = 20  # steps between progress lines on rank 0 (and between host reads of loss and finite flag)


@dataclass(frozen=True)
class _StepLine:
    """What a progress line names: step ``k`` of ``n_steps`` in ``epoch`` at (size, batch, duplicates), LR,
    and the epoch's realised budget so far."""

    epoch: int
    k: int
    n_steps: int
    size: int
    batch: int
    duplicates: int
    lr: float
    budget: float


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def lr_schedule_for(cfg: Config, table: RegimeTable, steps_per_epoch: int) -> LRSchedule:
    """The LR schedule a run trains with: ``optim`` over ``train.epochs * steps_per_epoch`` steps, scaled by
    the regime's batches (``table.mean_batch`` for ``lr_scaling_by: mean``), milestones in epochs if given.

    Example:
        >>> from mixsize_ray.config import load_config
        >>> from mixsize_ray.core.regime import regime_from_config
        >>> cfg = load_config("search_spaces/imagenet_s144_bplus.yaml")
        >>> table = regime_from_config(cfg, world_size=4).solve()
        >>> s = lr_schedule_for(cfg, table, steps_per_epoch=1614)
        >>> [round(s.lr(k), 4) for k in (0, 30 * 1614 - 1, 30 * 1614, 60 * 1614, 80 * 1614)]
        [0.3102, 0.3102, 0.031, 0.0031, 0.0003]
    """
    o = cfg.optim
    total = max(1, steps_per_epoch * cfg.train.epochs)
    milestone_steps = None
    if o.milestone_epochs is not None:  # e.g. Goyal et al.: epochs 30/60/80 of 90
        milestone_steps = [m * steps_per_epoch for m in o.milestone_epochs]
    return LRSchedule(
        o.lr, total,
        Decay(o.schedule, milestones=o.milestones, gamma=o.gamma, milestone_steps=milestone_steps),
        Warmup(min(o.warmup_steps, total - 1)),
        BatchScaling(o.lr_scaling, by=o.lr_scaling_by, base_batch=cfg.regime.base_batch,
                     mean_batch=table.mean_batch),
    )


class TrainingLoop:
    """One rank's MixSize training.

    Args:
        cfg: resolved config.
        rank, world_size: data-parallel position (1 process = 0, 1).
        device: torch device for this rank.
        wrap_model: called on the built model (e.g. Ray's ``prepare_model`` for DDP); identity by default.
        log: progress printer (rank 0 only prints).
        table: the regime the driver solved (:class:`~mixsize_ray.train.preflight.Preflight`); None solves it
            here from ``cfg`` and the dataset (a loop run without a driver).
    """

    def __init__(
        self,
        cfg: Config,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str = "cpu",
        wrap_model: Callable[[nn.Module], nn.Module] | None = None,
        log: Callable[[str], None] = print,
        table: RegimeTable | None = None,
    ):
        self.cfg = cfg
        self.rank, self.world_size = rank, world_size
        self.device = torch.device(device)
        self.log = log if rank == 0 else (lambda _msg: None)

        self.data = DataBundle(cfg)
        self.info = self.data.info
        self.train_set = self.data.train_set
        self.table = self._table(table, world_size)
        self.schedule = StepSchedule(self.table, num_images=len(self.train_set), seed=cfg.train.seed,
                                     epochs=cfg.train.epochs, max_steps_per_epoch=cfg.train.max_steps_per_epoch)
        self.loader = self.data.train_loader(self.schedule, rank=rank, world_size=world_size,
                                             pin_memory=self.device.type == "cuda")

        num_classes = cfg.model.num_classes or self.info.num_classes
        torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank and every re-run
        model = build_model(cfg.model.name, num_classes).to(self.device)
        self.min_size = int(getattr(model, "min_size", 1))
        self.precision = resolve_precision(cfg.train.amp, cfg.train.channels_last, self.device)
        self.channels_last = self.precision.channels_last
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.inputs = self.data.device_inputs(self.device, self.channels_last)  # loader pixels -> model inputs
        self.model = wrap_model(model) if wrap_model else model
        if cfg.train.compile:
            self.model = torch.compile(self.model, dynamic=True)

        o = cfg.optim
        # conv/linear weights decayed, BN and biases not (paper section 5; official weight_decay_config)
        params = param_groups(self.model, o.weight_decay, o.weight_decay_on)
        if o.name == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                                             weight_decay=o.weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
        self.steps_per_epoch = len(self.schedule.epoch_steps(0))
        self.lr_schedule = lr_schedule_for(cfg, self.table, self.steps_per_epoch)
        self.amp_dtype = self.precision.dtype
        self.scaler = torch.amp.GradScaler("cuda") if self.precision.amp == "fp16" else None
        self.smoother = (
            # no host sync in the step: the loop checks the norm's finiteness at its next read (EpochSums)
            GradientSmoother(o.smoothing_alpha, check_finite=False)
            if o.smoothing_alpha is not None else None
        )
        self.bn_cache = BNStatsCache()
        self.epoch = 0  # next epoch to run
        self.start_step = 0
        self.global_step = 0
        self._in_epoch_step: int | None = None  # set while on_step runs (mid-epoch checkpoints)
        self._resume_rng: dict[str, Any] | None = None  # a loaded checkpoint's RNG state, for a mid-epoch resume
        self._sums: EpochSums | None = None  # the running epoch's device-side sums
        self.log_every = LOG_EVERY
        self.last_step_times: dict[int, list[float]] = {}  # seconds per step by size, of the last epoch
        self.live: LiveMetrics | None = None  # live metrics (Ray workers set it: mixsize_ray.train.worker)

    def _table(self, table: RegimeTable | None, world_size: int) -> RegimeTable:
        """The driver's solved table (checked against this rank's data and world), or solved here for a
        bare loop (tests, benchmarks)."""
        n = len(self.train_set)
        if table is None:
            return regime_from_config(self.cfg, world_size=world_size, num_images=n).solve()
        if table.world_size != world_size or table.num_images != n:
            raise RuntimeError(f"the driver solved the regime for world size {table.world_size} and {table.num_images} "
                               f"images; this worker has {world_size} and {n}")
        return table

    # ---- GPU warm-up -----------------------------------------------------------------------------------
    def warmup_shapes(self) -> list[tuple[int, int]]:
        """``(S, rows)`` of every input this rank's remaining training will see (rows = B/world x D per step,
        the short last batches of ``image-fraction`` sampling included), read from the schedule of every
        remaining epoch (index arithmetic, no data); largest activation (S^2 x rows) first, then larger S."""
        shapes = {(st.size, st.batch // self.world_size * st.duplicates)
                  for e in range(self.epoch, self.cfg.train.epochs) for st in self.schedule.epoch_steps(e)}
        return sorted(shapes, key=lambda t: (t[0] ** 2 * t[1], t[0]), reverse=True)

    def warmup(self) -> None:
        """On GPU: one forward/backward per input shape training will see (:meth:`warmup_shapes`), largest
        first, so cudnn autotuning (and ``torch.compile``) and memory reservation happen before training, not
        in it. Model weights and BN statistics are restored after."""
        if self.device.type != "cuda":
            return
        torch.backends.cudnn.benchmark = True
        base = unwrap(self.model)
        saved = {k: v.clone() for k, v in base.state_dict().items()}
        for s, n in self.warmup_shapes():
            x = torch.randn(n, 3, s, s, device=self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                out = self.model(x)
            out.float().mean().backward()
            self.optimizer.zero_grad(set_to_none=True)
        base.load_state_dict(saved)
        torch.cuda.synchronize(self.device)

    def _autocast(self):
        return self.precision.autocast(self.device)

    # ---- training --------------------------------------------------------------------------------------
    def train_epoch(self, on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Run the current epoch (from ``start_step``); return its metrics.

        ``on_step(k)`` is called after each optimizer step with ``k`` = steps of this epoch done so far; while
        it runs, :meth:`state_dict` describes that exact point (epoch, step in epoch), so a checkpoint written
        there resumes at the next step: augmentation is seeded per step (see the loader), so the resumed
        steps equal an uninterrupted run's. Epoch metrics of a resumed epoch cover its remaining steps.
        A callback that saves state should call :meth:`check_finite` first.

        The step itself never waits for the device: loss, correct predictions and the first non-finite step
        stay in device tensors (:class:`~mixsize_ray.train.epoch_sums.EpochSums`), read once per
        ``log_every`` steps and at the end of the epoch. ``step_time_<S>`` is host time per step: on a GPU
        it measures the launch queue, not the kernels (``benchmarks/gpu_check.py`` times those). A non-finite
        loss (or, without AMP's scaler, gradient norm) raises ``FloatingPointError`` naming its step and size
        at the first read after it.
        """
        cfg, epoch = self.cfg, self.epoch
        self.schedule.set_epoch(epoch, self.start_step)
        # Augmentation is seeded per step by the loader. Torch's global RNG, seeded per (seed, epoch, rank),
        # only feeds the model's own randomness (dropout, stochastic depth: efficientnet_b0). A mid-epoch
        # resume continues from the checkpoint's RNG state instead, restored once the loader's iterator has
        # drawn its base seed (as it had in the interrupted run when that state was saved).
        resume_rng, self._resume_rng = (self._resume_rng if self.start_step else None), None
        if resume_rng is None:
            torch.manual_seed((cfg.train.seed * 1_000_003 + epoch) * 1009 + self.rank)
        batches = iter(self.loader)
        if resume_rng is not None:
            set_rng_state(resume_rng, self.device)
        self.model.train()
        self._sums = sums = EpochSums(self.device)
        budget = 0.0
        step_time: dict[int, list[float]] = defaultdict(list)
        shapes: list[tuple[int, int]] = []
        n_steps = len(self.schedule)
        t_epoch = time.perf_counter()
        t_last = t_epoch
        lr = self.lr_schedule.lr(self.global_step, self.table.base_batch)
        live = self.live
        for k, batch in enumerate(batches):
            t_got = time.perf_counter()
            x, y, size, dup = batch.images, batch.targets, batch.size, batch.duplicates
            global_batch = x.shape[0] // dup * self.world_size
            x = self.inputs(x)  # uint8 pixels (ImageNet style) copied, then normalised on the device
            y = y.to(self.device, non_blocking=True)
            shapes.append((int(x.shape[-1]), int(x.shape[0])))
            lr = self.lr_schedule.apply(self.optimizer, self.global_step, global_batch)
            with self._autocast():
                logits = self.model(x)
                loss = batch_augmentation_loss(logits.float(), y, dup, per_image_weight=cfg.optim.per_image_loss,
                                               label_smoothing=cfg.optim.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
            else:
                loss.backward()
            if self.smoother is not None:
                self.smoother.step(self.optimizer)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            grad_norm = smoothed = None
            if self.smoother is not None and self.scaler is None:
                grad_norm, smoothed = self.smoother.last_norm, self.smoother.smoothed_norm
            sums.add(StepOutcome(loss.detach(), logits.detach(), y, grad_norm, smoothed), size)
            budget += size * size * global_batch * dup / self.table.target_cost
            now = time.perf_counter()
            step_time[size].append(now - t_last)
            if live is not None:
                live.step(StepTiming(size, now - t_last, int(x.shape[0]), t_got - t_last))
            t_last = now
            self.global_step += 1
            if on_step is not None:
                self._in_epoch_step = self.start_step + k + 1
                try:
                    on_step(self._in_epoch_step)
                finally:
                    self._in_epoch_step = None
            if k % self.log_every == 0 or k == n_steps - 1:
                self._log_step(_StepLine(epoch, k, n_steps, size, global_batch, dup, lr, budget / (k + 1)),
                               now - t_epoch)
        elapsed = time.perf_counter() - t_epoch
        self.check_finite()
        digest = self.check_ranks_agree(shapes)
        loss_sum, correct, views = sums.totals(self.world_size)
        self.last_step_times = {s: list(t) for s, t in sorted(step_time.items())}
        metrics: dict[str, Any] = {
            "epoch": epoch,
            "step": self.global_step,
            "loss": loss_sum / max(views, 1),
            "train_top1": correct / max(views, 1),
            "lr": lr,
            "images_per_s": sums.views * self.world_size / max(elapsed, 1e-9),
            "realised_budget": budget / max(len(shapes), 1),
            "steps": len(shapes),
            "size_digest": digest,
            "ranks_agree": 1,
        }
        if self.smoother is not None and self.smoother.last_norm is not None:
            raw, smoothed = torch.stack([self.smoother.last_norm, self.smoother.smoothed_norm]).tolist()
            metrics["grad_norm"], metrics["grad_norm_smoothed"] = raw, smoothed
        for s, times in self.last_step_times.items():
            metrics[f"step_time_{s}"] = sum(times) / len(times)
        if live is not None:
            live.flush(Progress(metrics.get("grad_norm"), metrics.get("grad_norm_smoothed"),
                                metrics["realised_budget"]))
        self.epoch += 1
        self.start_step = 0
        return metrics

    def _log_step(self, line: _StepLine, elapsed: float) -> None:
        """The progress line of step ``line.k`` (one host read of the running loss, the finite flag and the
        gradient norms); the live metrics are sent here too."""
        r = self._read_checked()
        loss = r.last_loss
        if self.live is not None:
            self.live.flush(Progress(r.grad_norm, r.grad_norm_smoothed, line.budget))
        rate = self._sums.views * self.world_size / max(elapsed, 1e-9)
        self.log(f"epoch {line.epoch} step {self.start_step + line.k + 1}/{self.start_step + line.n_steps} "
                 f"size {line.size} B {line.batch} D {line.duplicates} loss {loss:.4f} "
                 f"lr {line.lr:.4g} {rate:.0f} img/s")

    def check_finite(self) -> float:
        """Raise ``FloatingPointError`` if a step of the running epoch had a non-finite loss (or gradient
        norm), naming the first such step and its size; else return the last step's loss (NaN before the
        first step). One host sync: a callback saving state mid-epoch calls it first, so that no checkpoint
        holds weights a non-finite step touched."""
        return self._read_checked().last_loss

    def _read_checked(self) -> Reading:
        """:meth:`check_finite`'s one read, all of it."""
        sums = self._sums
        if sums is None:
            return Reading(float("nan"), -1, float("nan"), float("nan"))
        r = sums.read()
        if r.first_bad >= 0:
            at = f"at epoch {self.epoch} step {self.start_step + r.first_bad} (size {sums.sizes[r.first_bad]})"
            if math.isfinite(r.bad_loss):
                raise FloatingPointError(f"non-finite gradient norm {r.bad_grad_norm} {at}, loss {r.bad_loss:.4g}")
            raise FloatingPointError(f"non-finite loss {r.bad_loss} {at}")
        return r

    def check_ranks_agree(self, shapes: list[tuple[int, int]]) -> int:
        """All-gather this epoch's (S, views-per-rank) sequence digest; raise if any rank differs.

        Returns the digest as an int (48 bits), the same on every rank, logged as ``size_digest``."""
        digest = hashlib.sha256(repr(shapes).encode()).hexdigest()
        if _distributed() and self.world_size > 1:
            everyone: list[Any] = [None] * self.world_size
            dist.all_gather_object(everyone, (digest, len(shapes)))
            if len(set(everyone)) != 1:
                raise RuntimeError(
                    f"ranks trained on different size sequences in epoch {self.epoch}: {everyone}"
                )
        return int(digest[:12], 16)

    @torch.no_grad()
    def validate(self, size: int | None = None) -> float:
        """Top-1 (fraction) on the test split at ``size`` (default train.eval_size or S0). Collective under
        DDP: every rank evaluates its shard (:meth:`eval_source`) and the counts are summed, so every rank
        returns the whole split's top-1."""
        from mixsize_ray.core.evaluation import evaluate_top_k, sum_across_ranks

        size = size or self.cfg.train.eval_size or self.cfg.regime.base_size
        with self._autocast():  # evaluation runs as training does (train.amp)
            res = evaluate_top_k(unwrap(self.model), self.eval_source()(size), device=self.device, ks=(1,),
                                 sum_ranks=sum_across_ranks())
        return float(res["top1"])

    def eval_source(self):
        """This rank's shard of the test split, loaded by ``data.num_workers`` workers (pinned on a GPU) and
        normalised on the device: :class:`~mixsize_ray.data.eval_source.EvalSource`."""
        return self.data.eval_source(self.rank, self.world_size, inputs=self.inputs)

    def sweep_sizes(self) -> list[int]:
        from mixsize_ray.core.evaluation import default_sizes

        sizes = self.cfg.train.sweep_sizes or default_sizes(self.info.style, self.cfg.regime.base_size)
        return sorted({s for s in sizes if s >= self.min_size})

    def calibrate(self, sizes: list[int] | None = None) -> BNStatsCache:
        """BN calibration at every sweep size. Under DDP every rank must call it: each rank feeds its own
        training batches (seeded by rank) and the statistics are averaged across ranks."""
        from mixsize_ray.core.calibration import calibrate_sizes_together

        sizes = sizes or self.sweep_sizes()
        t0 = time.perf_counter()
        with self._autocast():  # calibrated as trained (train.amp)
            self.bn_cache = calibrate_sizes_together(
                unwrap(self.model), self.data.calibration_together(sizes, self.rank),
                num_batches=self.cfg.train.calibrate_batches, device=self.device,
            )
        if self.live is not None:
            self.live.calibration(time.perf_counter() - t0)
        return self.bn_cache

    def sweep(self, sizes: list[int] | None = None, progress: bool = True):
        """Size sweep with the calibrated cache (call :meth:`calibrate` first): top-1/top-5 per size with and
        without calibration, GFLOPs per image. Collective under DDP, like :meth:`validate`: every rank reads
        its shard once for all sizes and every rank returns the whole split's result."""
        from mixsize_ray.core.evaluation import SweepPlan, size_sweep, sum_across_ranks

        c = self.cfg
        plan = SweepPlan(sizes or self.sweep_sizes(), min_size=self.min_size,
                         metadata={"train_sizes": list(c.regime.sizes), "mode": c.regime.mode,
                                   "sampling": c.regime.sampling, "model": c.model.name, "dataset": c.data.name})
        with self._autocast():  # evaluated as trained (train.amp)
            return size_sweep(unwrap(self.model), plan, self.eval_source(), cache=self.bn_cache,
                              device=self.device, progress=progress, sum_ranks=sum_across_ranks())

    # ---- state -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``epoch`` is the last finished epoch and ``step`` the next step within ``epoch + 1`` (0 at epoch
        ends; inside ``on_step`` the steps of the running epoch done so far)."""
        mid = self._in_epoch_step
        return {
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "smoother": self.smoother.state_dict() if self.smoother else None,
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "epoch": self.epoch - 1,
            "step": self.start_step if mid is None else mid,
            "global_step": self.global_step,
            "rng": torch.get_rng_state(),  # this rank's; a mid-epoch save adds every rank's (rng_by_rank)
            "cuda_rng": rng_state(self.device)["cuda"],
            "bn_cache": self.bn_cache.state_dict(),
            "config": self.cfg.to_dict(),
            "regime_table": self.table.to_json(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.smoother is not None and state.get("smoother"):
            self.smoother.load_state_dict(state["smoother"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"]) + 1
        self.start_step = int(state.get("step", 0))
        self.global_step = int(state["global_step"])
        by_rank = state.get("rng_by_rank")
        mine = (by_rank[self.rank] if by_rank and len(by_rank) == self.world_size
                else {"cpu": state["rng"], "cuda": state.get("cuda_rng")})
        set_rng_state(mine, self.device)
        self._resume_rng = mine  # train_epoch restores it again after the loader draws (mid-epoch resume)
        if state.get("bn_cache"):
            self.bn_cache = BNStatsCache.from_state_dict(state["bn_cache"])

    def all_rng_states(self) -> list[dict[str, Any]]:
        """Every rank's RNG state (:func:`rng_state`), in rank order: a collective when the run has several
        ranks. A mid-epoch checkpoint stores it as ``rng_by_rank`` so that each rank's dropout resumes exactly."""
        mine = rng_state(self.device)
        if self.world_size == 1 or not _distributed():
            return [mine]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, mine)
        return out

    @property
    def done(self) -> bool:
        return self.epoch >= self.cfg.train.epochs

    def budget_summary(self) -> str:
        return f"{self.steps_per_epoch} steps/epoch, mean size {self.table.mean_size:.1f}"
