"""GPU check: does S(144) D+ cost what fixed-224 costs per step on a real card, and is the GPU path healthy?

What it measures (ResNet-50, ImageNet-shaped synthetic tensors: random images and labels, no dataset):

* the (S, B, D) tables of ``search_spaces/imagenet_s144_dplus.yaml`` and ``imagenet_fixed.yaml``, solved by
  the project's own solver (``regime_from_config(cfg, world_size=1).solve()``), B0 scaled by ``--batch-scale``
  (every entry keeps its S^2*B*D budget ratio);
* per size, with bf16 autocast, channels_last, ``cudnn.benchmark`` and the training loop's largest-shape-first
  warm-up (:meth:`mixsize_ray.train.loop.TrainingLoop.warmup`): the median step time over ``--steps`` timed
  steps (CUDA events; ``torch.cuda.synchronize`` before and after the timing window), peak memory
  (``max_memory_allocated``, reset before each step; weights, optimizer state and the regime's pregenerated
  batches included), cudnn re-tunes and, with ``--compile``, recompiles;
* the D+ over fixed step-time ratio: sum_i p_i * median_i (p_i = the table's step share) / median_fixed;
* MFU: FLOPs per step (``FlopCounterMode``, one forward+backward per shape, counted once) over the step time,
  divided by the card's peak dense bf16 FLOP/s (:data:`PEAK_BF16_TFLOPS`, or ``--peak-tflops``);
* Ray Train with one GPU: a 1-worker ``TorchTrainer`` with ``TorchConfig(backend="nccl")`` runs a few D+ steps
  and an ``all_reduce``, and reports its step time and ``torch.distributed.get_backend()``.

Timed steps are interleaved (each round visits every size once, in a seeded random order) so shape switches
are timed as in a sampled run. A "re-tune" is a timed step slower than 3x its size's median: with
``cudnn.benchmark=True`` a conv shape the warm-up missed is re-tuned on its first use, which shows up as such a
step (allocator growth would too; both are what the warm-up should have prevented). "Recompiles" count new
dynamo graphs (``torch._dynamo.utils.counters["stats"]["unique_graphs"]``) while a size ran, the very first
compilation of a model not counted.

Targets: D+/fixed step-time ratio <= 1.05 (printed, with whether it holds; the exit code stays 0), re-tunes
and recompiles 0 after warm-up; MFU is reported (no pass/fail). Under 5 minutes on one H100/H200.

Run:
    make gpu-check                                   # GPU: writes benchmarks/results/gpu_check.json
    make gpu-check GPU_CHECK_ARGS="--batch-scale 0.5 --compile"
    python -m benchmarks.gpu_check --smoke           # anywhere: benchmarks/results/gpu_check-quick.json

Without CUDA, or with ``--smoke``, the same code runs tiny ("mode": "smoke"): the CIFAR presets
(``cifar_s28_dplus.yaml``, ``cifar_fixed.yaml``: ResNet-20, 40/32/24/16 px), base batch 8, 3 timed steps per
size, no autocast on CPU (``amp: "none"``) and one CPU thread, and the Ray part on ``gloo`` without a GPU.
Smoke numbers check the code path, not the targets.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import RESULTS, machine, write_result
from mixsize_ray.config import Config, load_config
from mixsize_ray.core.loss import batch_augmentation_loss
from mixsize_ray.core.regime import RegimeTable, regime_from_config
from mixsize_ray.core.smoothing import GradientSmoother
from mixsize_ray.core.weight_decay import param_groups
from mixsize_ray.errors import ConfigError, one_line
from mixsize_ray.models import build_model

ROOT = Path(__file__).resolve().parents[1]
RATIO_TARGET = 1.05
RETUNE_FACTOR = 3.0  # a timed step slower than this times its size's median counts as a re-tune

# Peak dense (no sparsity) bf16 tensor-core TFLOP/s by device name, first match wins (NVIDIA datasheets:
# H100 SXM/PCIe, H200, A100, L4, A10). torch names an H100 SXM "NVIDIA H100 80GB HBM3"; NVL cards are not
# listed (their peak differs) and give MFU null unless --peak-tflops is passed.
PEAK_BF16_TFLOPS: list[tuple[str, float]] = [
    (r"H100.*PCIe", 756.0),
    (r"H100.*(SXM|HBM3)", 989.0),
    (r"\bH200\b(?!.*NVL)", 989.0),
    (r"\bA100\b", 312.0),
    (r"\bL4\b", 121.0),
    (r"\bA10\b", 125.0),
]


# ---- options ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preset:
    """What a mode runs: the two configs (their model comes from the config) and its step counts."""

    dplus: str
    fixed: str
    num_classes: int
    batch_scale: float  # default --batch-scale
    steps: int  # timed steps per size
    warmup_steps: int  # untimed training steps per size after the warm-up passes
    ray_steps: int  # timed D+ steps per size in the Ray worker


GPU = Preset("search_spaces/imagenet_s144_dplus.yaml", "search_spaces/imagenet_fixed.yaml", 1000, 1.0, 30, 3, 3)
SMOKE = Preset("search_spaces/cifar_s28_dplus.yaml", "search_spaces/cifar_fixed.yaml", 10, 0.125, 3, 1, 1)


@dataclass(frozen=True)
class Options:
    """Parsed command line; ``smoke`` is already True when CUDA is missing."""

    smoke: bool
    batch_scale: float
    steps: int
    compile: bool
    peak_tflops: float | None
    out: Path
    seed: int = 0

    @property
    def preset(self) -> Preset:
        return SMOKE if self.smoke else GPU


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line naming the flag, exit 2 (no usage block)
        self.exit(2, f"gpu_check: error: {message}\n")


def _positive(kind: type) -> Callable[[str], Any]:
    what = "an integer > 0" if kind is int else "a number > 0"

    def parse(text: str) -> Any:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (v > 0 and math.isfinite(v)):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v
    return parse


def parse_options(argv: list[str] | None) -> Options:
    p = _Parser(prog="python -m benchmarks.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny CIFAR-sized run (forced without CUDA)")
    p.add_argument("--batch-scale", type=_positive(float), default=None,
                   help="scale B0 (default 1.0: B0=256; smoke 0.125: B0=8); budget ratios are kept")
    p.add_argument("--steps", type=_positive(int), default=None, help="timed steps per size (default 30; smoke 3)")
    p.add_argument("--compile", action="store_true", help="torch.compile(dynamic=True) the model; count recompiles")
    p.add_argument("--peak-tflops", type=_positive(float), default=None,
                   help="the card's peak dense bf16 TFLOP/s for MFU (default: looked up by device name)")
    p.add_argument("--out", type=Path, default=None,
                   help="result JSON (default benchmarks/results/gpu_check.json; smoke: gpu_check-quick.json)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    smoke = a.smoke or not torch.cuda.is_available()
    preset = SMOKE if smoke else GPU
    out = a.out or RESULTS / ("gpu_check-quick.json" if smoke else "gpu_check.json")
    return Options(smoke, a.batch_scale or preset.batch_scale, a.steps or preset.steps, a.compile,
                   a.peak_tflops, out, a.seed)


# ---- workloads: the solved tables as shapes ----------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    """One table entry; a step feeds ``views = batch * duplicates`` images of ``size`` px."""

    size: int
    batch: int
    duplicates: int
    prob: float
    step_share: float

    @property
    def views(self) -> int:
        return self.batch * self.duplicates


@dataclass(frozen=True)
class Workload:
    """What one regime trains: model, shapes, optimizer and smoothing settings (plain data, sent to Ray)."""

    name: str
    preset: str
    model: str
    num_classes: int
    shapes: tuple[Shape, ...]
    target_cost: int
    lr: float
    momentum: float
    weight_decay: float
    weight_decay_on: str
    smoothing_alpha: float | None


def solve(preset: str, base_batch: int) -> tuple[Config, RegimeTable]:
    """The preset's config with B0 overridden, and its table solved for one rank (ConfigError if no B fits)."""
    cfg = load_config(ROOT / preset, [f"regime.base_batch={base_batch}"])
    return cfg, regime_from_config(cfg, world_size=1).solve()


def workload(name: str, preset: str, opts: Options) -> Workload:
    base = load_config(ROOT / preset)
    cfg, table = solve(preset, max(1, round(base.regime.base_batch * opts.batch_scale)))
    o = cfg.optim
    shapes = tuple(Shape(e.size, e.batch, e.duplicates, e.prob, e.step_share) for e in table.entries)
    return Workload(name, preset, cfg.model.name, cfg.model.num_classes or opts.preset.num_classes, shapes,
                    table.target_cost, o.lr, o.momentum, o.weight_decay, o.weight_decay_on, o.smoothing_alpha)


def warmup_order(shapes: tuple[Shape, ...]) -> list[Shape]:
    """Largest S^2 * views first, as TrainingLoop.warmup orders its (S, B*D) shapes."""
    return sorted(shapes, key=lambda s: s.size**2 * s.views, reverse=True)


def interleaved_order(shapes: tuple[Shape, ...], rounds: int, seed: int) -> list[Shape]:
    """Every shape once per round, in a seeded random order per round."""
    rng = random.Random(seed)
    order: list[Shape] = []
    for _ in range(rounds):
        order += rng.sample(list(shapes), len(shapes))
    return order


# ---- the training step (shared by the bare run and the Ray worker) -----------------------------------------
class Runner:
    """One regime's model, optimizer and smoother on ``device``, stepping on fixed random batches: the
    training loop's step (autocast, channels_last, batch-augmentation loss, gradient smoothing, SGD)."""

    def __init__(self, work: Workload, device: torch.device, compile: bool = False,
                 wrap: Callable[[nn.Module], nn.Module] | None = None, seed: int = 0):
        self.work, self.device = work, device
        self.cuda = device.type == "cuda"
        self.amp = "bf16" if self.cuda else "none"
        self.channels_last = self.cuda
        torch.manual_seed(seed)
        self.base = build_model(work.model, work.num_classes).to(device)
        if self.channels_last:
            self.base = self.base.to(memory_format=torch.channels_last)
        self.model = wrap(self.base) if wrap else self.base
        self.compiled = compile
        if compile:
            self.model = torch.compile(self.model, dynamic=True)
        self.optimizer = torch.optim.SGD(param_groups(self.base, work.weight_decay, work.weight_decay_on),
                                         lr=work.lr, momentum=work.momentum, weight_decay=work.weight_decay)
        alpha = work.smoothing_alpha
        self.smoother = GradientSmoother(alpha, check_finite=False) if alpha is not None else None
        self.batches = {s.size: self._batch(s, seed) for s in work.shapes}
        self.last_loss: torch.Tensor | None = None

    def _batch(self, shape: Shape, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator(device=self.device).manual_seed(seed + shape.size)
        x = torch.randn(shape.views, 3, shape.size, shape.size, device=self.device, generator=g)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, self.work.num_classes, (shape.batch,), device=self.device, generator=g)
        return x, y.repeat_interleave(shape.duplicates)  # sample-major rows, as the loader yields

    def autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.cuda else nullcontext()

    def loss(self, model: nn.Module, shape: Shape) -> torch.Tensor:
        x, y = self.batches[shape.size]
        with self.autocast():
            logits = model(x)
            return batch_augmentation_loss(logits.float(), y, shape.duplicates)

    def step(self, shape: Shape) -> None:
        loss = self.loss(self.model, shape)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.smoother is not None:
            self.smoother.step(self.optimizer)
        self.optimizer.step()
        self.last_loss = loss.detach()

    def warmup(self) -> dict[int, int]:
        """TrainingLoop.warmup: cudnn.benchmark on, one forward/backward per shape, largest first. Returns
        the dynamo graphs each shape compiled (all 0 without --compile)."""
        if self.cuda:
            torch.backends.cudnn.benchmark = True
        graphs = {}
        for shape in warmup_order(self.work.shapes):
            g0 = self.graphs()
            x, _ = self.batches[shape.size]
            with self.autocast():
                out = self.model(x)
            out.float().mean().backward()
            self.optimizer.zero_grad(set_to_none=True)
            graphs[shape.size] = self.graphs() - g0
        self.sync()
        return graphs

    def graphs(self) -> int:
        """Dynamo graphs compiled so far in this process (0 when not compiling)."""
        if not self.compiled:
            return 0
        from torch._dynamo.utils import counters

        return int(counters["stats"]["unique_graphs"])

    def flops(self, shape: Shape) -> int:
        """FLOPs of one forward+backward of ``shape`` (uncompiled model; the loss itself counts 0)."""
        with FlopCounterMode(display=False) as counter:
            self.loss(self.base, shape).backward()
        self.optimizer.zero_grad(set_to_none=True)
        return int(counter.get_total_flops())

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)


# ---- timing ------------------------------------------------------------------------------------------------
class StepClock:
    """Per-step times: CUDA events on GPU (read once, after the window's synchronize), perf_counter on CPU."""

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self.marks: list[tuple[int, Any, Any]] = []

    def start(self) -> Any:
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def stop(self, size: int, started: Any) -> None:
        self.marks.append((size, started, self.start()))

    def seconds(self) -> dict[int, list[float]]:
        out: dict[int, list[float]] = {}
        for size, a, b in self.marks:
            out.setdefault(size, []).append(a.elapsed_time(b) / 1e3 if self.cuda else b - a)
        return out


@dataclass
class SizeStats:
    """Accumulated per size while stepping."""

    peak_bytes: int = 0
    graphs: int = 0


def run_steps(runner: Runner, order: list[Shape], clock: StepClock | None, stats: dict[int, SizeStats]) -> None:
    """Step through ``order``; time each step (``clock``), track peak memory and new dynamo graphs per size."""
    for shape in order:
        s = stats.setdefault(shape.size, SizeStats())
        g0 = runner.graphs()
        if runner.cuda:
            torch.cuda.reset_peak_memory_stats(runner.device)
        t0 = clock.start() if clock else None
        runner.step(shape)
        if clock:
            clock.stop(shape.size, t0)
        if runner.cuda:  # the caching allocator counts on the host at launch: no sync needed
            s.peak_bytes = max(s.peak_bytes, torch.cuda.max_memory_allocated(runner.device))
        s.graphs += runner.graphs() - g0


def measure(runner: Runner, steps: int, warmup_steps: int, seed: int) -> dict[int, dict[str, Any]]:
    """Warm up, then time ``steps`` interleaved steps per size; per-size results (times in ms)."""
    if runner.compiled:
        torch._dynamo.reset()
        from torch._dynamo.utils import counters

        counters.clear()
    shapes = runner.work.shapes
    warm = runner.warmup()
    largest = warmup_order(shapes)[0].size
    warm[largest] = 0  # the model's initial compilation (its first shape): not a recompile
    stats = {s.size: SizeStats(graphs=warm[s.size]) for s in shapes}
    run_steps(runner, interleaved_order(shapes, warmup_steps, seed), None, stats)
    clock = StepClock(runner.cuda)
    runner.sync()
    run_steps(runner, interleaved_order(shapes, steps, seed + 1), clock, stats)
    runner.sync()
    if runner.last_loss is not None and not torch.isfinite(runner.last_loss):
        raise FloatingPointError(f"{runner.work.name}: non-finite loss {runner.last_loss.item()}")
    times = clock.seconds()
    return {sh.size: size_row(sh, times[sh.size], stats[sh.size], runner) for sh in shapes}


def size_row(shape: Shape, seconds: list[float], stats: SizeStats, runner: Runner) -> dict[str, Any]:
    med = statistics.median(seconds)
    flops = runner.flops(shape)
    return {
        **asdict(shape), "views": shape.views,
        "median_ms": 1e3 * med, "mean_ms": 1e3 * statistics.fmean(seconds),
        "step_ms": [round(1e3 * t, 4) for t in seconds],
        "peak_mib": stats.peak_bytes / 2**20 if runner.cuda else None,
        "retunes": sum(t > RETUNE_FACTOR * med for t in seconds),
        "recompiles": stats.graphs if runner.compiled else None,
        "flops_per_step": flops,
        "tflops": flops / med / 1e12,
    }


# ---- summary numbers ---------------------------------------------------------------------------------------
def weighted(rows: list[dict[str, Any]], key: str) -> float:
    """sum_i step_share_i * row_i[key]."""
    return sum(r["step_share"] * r[key] for r in rows)


def step_ratio(dplus: list[dict[str, Any]], fixed: list[dict[str, Any]]) -> dict[str, Any]:
    value = weighted(dplus, "median_ms") / weighted(fixed, "median_ms")
    return {"dplus_over_fixed": value, "dplus_weighted_ms": weighted(dplus, "median_ms"),
            "fixed_ms": weighted(fixed, "median_ms"), "target": RATIO_TARGET, "holds": value <= RATIO_TARGET}


def peak_tflops(opts: Options, device: torch.device) -> tuple[float | None, str]:
    """The card's peak dense bf16 TFLOP/s and where it came from (or None and why)."""
    if opts.peak_tflops is not None:
        return opts.peak_tflops, "--peak-tflops"
    if device.type != "cuda":
        return None, "no CUDA device (CPU run): pass --peak-tflops for a number"
    return lookup_peak(torch.cuda.get_device_name(device))


def lookup_peak(name: str) -> tuple[float | None, str]:
    """:data:`PEAK_BF16_TFLOPS` for a CUDA device name.

    Example:
        >>> lookup_peak("NVIDIA H100 80GB HBM3")[0], lookup_peak("NVIDIA A10")[0], lookup_peak("NVIDIA L40S")[0]
        (989.0, 125.0, None)
    """
    for pattern, tflops in PEAK_BF16_TFLOPS:
        if re.search(pattern, name):
            return tflops, f"NVIDIA datasheet ({name} ~ /{pattern}/)"
    return None, f"unknown card {name!r}: pass --peak-tflops"


def mfu(opts: Options, device: torch.device, dplus: list[dict], fixed: list[dict]) -> dict[str, Any]:
    """Achieved FLOP/s = weighted FLOPs per step / weighted step time; MFU = achieved / peak."""
    peak, source = peak_tflops(opts, device)
    achieved = {name: weighted(rows, "flops_per_step") / (weighted(rows, "median_ms") / 1e3) / 1e12
                for name, rows in (("dplus", dplus), ("fixed", fixed))}
    out: dict[str, Any] = {"peak_tflops": peak, "source": source, "achieved_tflops": achieved}
    out.update({name: (v / peak if peak else None) for name, v in achieved.items()})
    out["reason"] = None if peak else source
    return out


# ---- Ray Train: one worker, nccl (GPU) or gloo (smoke) -----------------------------------------------------
def ray_worker(config: dict[str, Any]) -> None:
    """Runs inside the TorchTrainer's worker: warm-up, a few timed D+ steps, one all_reduce, one report."""
    import ray.train
    import ray.train.torch
    import torch.distributed as dist

    torch.set_num_threads(config["threads"])
    device = ray.train.torch.get_device()
    runner = Runner(config["work"], device, wrap=ray.train.torch.prepare_model, seed=config["seed"])
    rows = measure(runner, config["steps"], 1, config["seed"])
    t = torch.ones(1, device=device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    metrics = {"backend": dist.get_backend(), "world_size": dist.get_world_size(), "device": str(device),
               "all_reduce_sum": float(t.item()), "amp": runner.amp,
               "median_ms": {str(s): r["median_ms"] for s, r in rows.items()},
               "weighted_ms": weighted(list(rows.values()), "median_ms")}
    with tempfile.TemporaryDirectory() as d:  # Train V2's Result.metrics are those reported with a checkpoint
        Path(d, "gpu_check_ray.json").write_text(json.dumps(metrics))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))


def ray_check(work: Workload, opts: Options) -> dict[str, Any]:
    """A 1-worker TorchTrainer (nccl + GPU, or gloo on CPU in smoke mode) on a private local Ray."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from mixsize_ray.train.cluster import ClusterRequest, connect, disconnect

    use_gpu = not opts.smoke
    cpus = 1 if opts.smoke else max(1, min(8, (os.cpu_count() or 2) - 1))
    t0 = time.perf_counter()
    started = connect(ClusterRequest(None, num_cpus=cpus, quiet=True))
    try:
        with tempfile.TemporaryDirectory(prefix="gpu-check-ray-") as storage:
            trainer = TorchTrainer(
                ray_worker,
                train_loop_config={"work": work, "steps": opts.preset.ray_steps, "threads": cpus, "seed": opts.seed},
                torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
                scaling_config=ScalingConfig(num_workers=1, use_gpu=use_gpu,
                                             resources_per_worker={"CPU": cpus, **({"GPU": 1} if use_gpu else {})}),
                run_config=RunConfig(storage_path=storage, name="gpu_check"),
            )
            metrics = dict(trainer.fit().metrics or {})
    finally:
        if started:
            disconnect()
    return {"requested_backend": "nccl" if use_gpu else "gloo", "use_gpu": use_gpu, **metrics,
            "seconds": time.perf_counter() - t0}


# ---- the report --------------------------------------------------------------------------------------------
def regime_doc(work: Workload, runner: Runner, rows: dict[int, dict[str, Any]]) -> dict[str, Any]:
    return {"preset": work.preset, "model": work.model, "num_classes": work.num_classes,
            "target_cost": work.target_cost, "smoothing_alpha": work.smoothing_alpha, "amp": runner.amp,
            "channels_last": runner.channels_last, "sizes": list(rows.values())}


def format_report(doc: dict[str, Any]) -> str:
    head = (f"{'regime':>6} {'size':>5} {'B':>5} {'D':>3} {'p':>5} {'median ms':>10} {'peak MiB':>9} "
            f"{'re-tunes':>8} {'recompiles':>10} {'TFLOP/s':>8}")
    lines = [f"gpu_check ({doc['mode']}) on {doc['device']}: amp {doc['amp']}, channels_last "
             f"{doc['channels_last']}, compile {doc['compile']}, B0 {doc['base_batch']}", head]
    for name in ("dplus", "fixed"):
        for r in doc["regimes"][name]["sizes"]:
            peak = "-" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
            rec = "-" if r["recompiles"] is None else str(r["recompiles"])
            lines.append(f"{name:>6} {r['size']:>5} {r['batch']:>5} {r['duplicates']:>3} {r['step_share']:>5.2f} "
                         f"{r['median_ms']:>10.2f} {peak:>9} {r['retunes']:>8} {rec:>10} {r['tflops']:>8.2f}")
    ratio, m, ray = doc["ratio"], doc["mfu"], doc["ray"]
    lines.append(f"D+/fixed step time: {ratio['dplus_over_fixed']:.3f} (target <= {ratio['target']}: "
                 f"{'holds' if ratio['holds'] else 'DOES NOT hold'}){' [smoke: not meaningful]' * doc['smoke']}")
    if m["reason"]:
        lines.append(f"MFU: null ({m['reason']}); achieved D+ {m['achieved_tflops']['dplus']:.3f}, fixed "
                     f"{m['achieved_tflops']['fixed']:.3f} TFLOP/s (no target)")
    else:
        lines.append(f"MFU: D+ {100 * m['dplus']:.1f}%, fixed {100 * m['fixed']:.1f}% of {m['peak_tflops']:g} "
                     f"TFLOP/s bf16 ({m['source']}; reported, no target)")
    if "error" in ray:
        lines.append(f"Ray Train: FAILED ({ray['error']})")
    else:
        lines.append(f"Ray Train 1 worker: backend {ray['backend']} (asked {ray['requested_backend']}), "
                     f"D+ weighted step {ray['weighted_ms']:.2f} ms ({ray['over_bare']:.2f}x bare), "
                     f"all_reduce sum {ray['all_reduce_sum']:g}, {ray['seconds']:.0f} s with Ray start")
    lines.append(f"total {doc['seconds']:.0f} s (target < 300 s on a GPU)")
    return "\n".join(lines)


def save(doc: dict[str, Any], out: Path) -> Path:
    """benchmarks/results/gpu_check.json through write_result; any other path with the same layout."""
    if out.resolve() == (RESULTS / "gpu_check.json").resolve():
        return write_result("gpu_check", doc)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "gpu_check", "machine": machine(), **doc}, indent=2))
    print(f"[bench] wrote {out}")
    return out


# ---- main --------------------------------------------------------------------------------------------------
def bench_regime(work: Workload, opts: Options, device: torch.device) -> dict[str, Any]:
    runner = Runner(work, device, compile=opts.compile, seed=opts.seed)
    rows = measure(runner, opts.steps, opts.preset.warmup_steps, opts.seed)
    doc = regime_doc(work, runner, rows)
    del runner
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return doc


@contextmanager
def cpu_threads(n: int | None):
    """torch's intra-op threads set to ``n`` inside (None: unchanged), restored after."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run(opts: Options) -> dict[str, Any]:
    t0 = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    works = {"dplus": workload("dplus", opts.preset.dplus, opts),
             "fixed": workload("fixed", opts.preset.fixed, opts)}
    # one thread for a CPU smoke run: several OpenMP threads on a busy small machine spin for seconds a step
    with cpu_threads(1 if device.type == "cpu" else None):
        regimes = {name: bench_regime(w, opts, device) for name, w in works.items()}
    dplus, fixed = regimes["dplus"]["sizes"], regimes["fixed"]["sizes"]
    try:
        ray = ray_check(works["dplus"], opts)
    except Exception as e:  # noqa: BLE001 - recorded in the result; the exit code says it failed
        ray = {"error": f"{type(e).__name__}: {one_line(e, 300)}"}
    ratio = step_ratio(dplus, fixed)
    if "weighted_ms" in ray:
        ray["over_bare"] = ray["weighted_ms"] / ratio["dplus_weighted_ms"]
    return {
        "mode": "smoke" if opts.smoke else "gpu", "smoke": opts.smoke,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "amp": regimes["dplus"]["amp"], "channels_last": regimes["dplus"]["channels_last"],
        "cudnn_benchmark": device.type == "cuda", "compile": opts.compile,
        "batch_scale": opts.batch_scale, "base_batch": works["fixed"].shapes[0].batch, "steps_per_size": opts.steps,
        "timing": "CUDA events per step, synchronize around the window" if device.type == "cuda"
        else "perf_counter per step",
        "retune_rule": f"timed steps slower than {RETUNE_FACTOR:g}x their size's median",
        "regimes": regimes, "ratio": ratio, "mfu": mfu(opts, device, dplus, fixed),
        "ray": ray, "seconds": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    opts = parse_options(argv)
    try:
        doc = run(opts)
    except ConfigError as e:  # e.g. a --batch-scale too small for the solver to keep every size's budget
        print(f"gpu_check: error: --batch-scale {opts.batch_scale:g}: {e}", file=sys.stderr)
        return 2
    print(format_report(doc))
    save(doc, opts.out)
    return 1 if "error" in doc["ray"] else 0


if __name__ == "__main__":
    # through the importable module, so Ray pickles ray_worker and Workload by reference, not __main__'s copies
    from benchmarks.gpu_check import main as _main

    sys.exit(_main())
