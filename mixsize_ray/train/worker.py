"""``train_func(config)``: what each Ray Train worker runs. Reads only its config and reports every epoch.

``config`` is ``{"config": <resolved Config as plain data>}``. Rank 0 writes the checkpoint (atomically,
see :mod:`mixsize_ray.train.checkpoint`); every rank calls ``ray.train.report`` exactly once per epoch.
Re-running the same run name (same storage path) makes Ray Train hand back the latest checkpoint through
``ray.train.get_checkpoint()``: the loop continues at the next epoch with the same size sequence.
The final epoch's checkpoint also holds the end-of-run size sweep (``sweep.json``, ``sweep.png``) and
the per-size BN statistics.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import ray.train
import ray.train.torch
import torch

from mixsize_ray.config import config_from_dict
from mixsize_ray.core.sweep_metrics import sweep_report
from mixsize_ray.train.checkpoint import load_good, save_checkpoint
from mixsize_ray.train.fault import die, should_fail
from mixsize_ray.train.live_metrics import LiveMetrics, LiveRun
from mixsize_ray.train.loop import TrainingLoop
from mixsize_ray.train.step_trace import StepTrace

SWEEP_JSON = "sweep.json"
SWEEP_PNG = "sweep.png"


def _log(msg: str) -> None:
    # straight to stdout: Ray Train V2 patches print() into its logger, which shows every line twice
    sys.stdout.write(f"[mixsize-ray] {msg}\n")
    sys.stdout.flush()


def run_folder(cfg) -> str:
    """The run's folder under its storage (for the fault marker)."""
    from mixsize_ray.train.preflight import storage_path

    return f"{storage_path(cfg).rstrip('/')}/{cfg.train.name}"


def _start_tracker(config: dict[str, Any], rank: int, loop: TrainingLoop):
    """Rank 0's MLflow tracker for the run the driver decided (``config["tracking"]``), else None."""
    if rank != 0 or not config.get("tracking"):
        return None
    from mixsize_ray.tracking import worker_tracker

    tracker = worker_tracker(config["tracking"], _log)
    tracker.log_start(loop.table.to_json(), loop.cfg.to_yaml())
    return tracker


def _track_epoch(tracker, loop: TrainingLoop, metrics: dict[str, Any], sweep_doc: dict | None, folder: str) -> None:
    """Epoch metrics; after the last epoch also the curve, the sweep files and the model (rank 0)."""
    tracker.log_epoch(metrics)
    if sweep_doc is None:
        return
    epoch = int(metrics["epoch"])
    tracker.log_sweep(sweep_doc, [Path(folder, SWEEP_JSON), Path(folder, SWEEP_PNG)], epoch=epoch)
    run = tracker.info
    if run.log_model:
        tracker.log_model(loop.model, loop.bn_cache, fmt=run.model_format, example_size=loop.cfg.regime.base_size,
                          registered_model_name=run.register_model, step=epoch)
    metrics["mlflow_pending"] = tracker.close()


def _live_metrics(loop: TrainingLoop, rank: int) -> LiveMetrics | None:
    """This worker's live metrics (``ray.util.metrics``, exported by Ray's metrics agent); None, with a
    warning, when they cannot be made: live panels are not worth a failed run."""
    try:
        live = LiveMetrics(LiveRun(loop.cfg.train.name, rank))
        live.start({e.size: e.step_share for e in loop.table.entries})
        return live
    except Exception as e:  # noqa: BLE001
        _log(f"WARNING: live metrics are off ({type(e).__name__}: {e})")
        return None


def train_func(config: dict[str, Any]) -> None:
    """Per-worker entry point for :class:`ray.train.torch.TorchTrainer`.

    ``config``: ``{"config": <Config as plain data>, "table": <the driver's solved RegimeTable>,
    "tracking": <TrackingRun as a dict>?}``."""
    cfg = config_from_dict(config["config"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    threads = max(1, int(cfg.ray.cpus_per_worker))
    torch.set_num_threads(threads)
    device = ray.train.torch.get_device()
    loop = TrainingLoop(cfg, rank=rank, world_size=world, device=device,
                        wrap_model=ray.train.torch.prepare_model, log=_log, table=config.get("table"))
    loop.live = _live_metrics(loop, rank)
    if cfg.train.step_trace:  # per-step time and memory, timed phases (benchmarks/gpu_check.py)
        StepTrace.attach(loop)
    run_id = (config.get("tracking") or {}).get("run_id")
    extra: dict[str, Any] = {"mlflow_run_id": run_id}
    start = config.get("start") or {}
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None and start.get("checkpoint"):  # a scheduler's start point (PBT exploit), see Start
        checkpoint = ray.train.Checkpoint.from_directory(start["checkpoint"])
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state, used, skipped = load_good(d, run_folder(cfg))
        for line in skipped:  # a corrupt newest checkpoint: named, and the previous good one resumes
            _log(f"WARNING: {line}; resuming from {used}")
        loop.load_state_dict(state)
        extra["mlflow_run_id"] = run_id or state.get("mlflow_run_id")  # kept when this re-run logs nowhere
        where = f"epoch {loop.epoch} step {loop.start_step}" if loop.start_step else f"after epoch {state['epoch']}"
        _log(f"resuming from checkpoint {where} (global step {loop.global_step})")
    else:
        _log(f"starting: {loop.budget_summary()}, world size {world}, device {device}")
    tracker = _start_tracker(config, rank, loop)
    try:
        _train(cfg, loop, rank, extra, tracker, start.get("stop_after_epoch"))
    finally:
        if tracker is not None and not tracker.closed:
            tracker.close()


def _report_mid_epoch(cfg, loop: TrainingLoop, rank: int, extra: dict[str, Any], epoch: int, k: int) -> None:
    """A checkpoint after step ``k`` of ``epoch`` (``train.checkpoint_every_steps``): a kill after it
    resumes at step ``k + 1`` instead of repeating the epoch. Nothing is logged to MLflow (epoch metrics
    are logged once, at the epoch's end)."""
    loop.check_finite()  # every rank, before any state is saved: a non-finite step stops the run here
    rngs = loop.all_rng_states()  # every rank (a collective): each rank's dropout resumes where it was
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = None
        if rank == 0:
            state = loop.state_dict()
            state["rng_by_rank"] = rngs
            state["metrics"] = {}
            state.update(extra)
            save_checkpoint(tmp, state, config_yaml=cfg.to_yaml())
            ckpt = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report({"epoch": epoch, "mid_epoch": 1, "step": loop.global_step, "epoch_step": k},
                         checkpoint=ckpt)


def _train(cfg, loop: TrainingLoop, rank: int, extra: dict[str, Any], tracker, stop: int | None = None) -> None:
    """Epochs until done (or after epoch ``stop``: a scheduler's segment, validated at its end); rank 0
    evaluates, checkpoints, sweeps at the end and (with a tracker) logs."""
    if loop.done or (stop is not None and loop.epoch > stop):
        _log("run already complete: nothing to train")
        return
    loop.warmup()
    every = cfg.train.checkpoint_every_steps
    while not loop.done and (stop is None or loop.epoch <= stop):
        on_step = None
        if every:
            def on_step(k: int, epoch: int = loop.epoch, n: int = loop.steps_per_epoch) -> None:
                if k % every == 0 and k < n:
                    _report_mid_epoch(cfg, loop, rank, extra, epoch, k)
        metrics = loop.train_epoch(on_step=on_step)
        epoch = metrics["epoch"]
        last = loop.done
        if (epoch + 1) % cfg.train.eval_every == 0 or last or epoch == stop:
            metrics["val_top1"] = loop.validate()  # collective: every rank its shard
        if last:
            loop.calibrate()  # collective: every rank
            result = loop.sweep(progress=False)  # collective: every rank its shard, once for all sizes
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if rank == 0:
                if last:
                    doc = result.to_dict()
                    Path(tmp, SWEEP_JSON).write_text(json.dumps(doc, indent=2))
                    result.plot(os.path.join(tmp, SWEEP_PNG))
                    if isinstance(loop.live, StepTrace):  # train.step_trace: into the last checkpoint
                        loop.live.save(tmp)
                    metrics.update(sweep_report(doc))
                if tracker is not None:
                    metrics["mlflow_run_id"] = tracker.run_id  # informational: the driver decided it
                    _track_epoch(tracker, loop, metrics, doc if last else None, tmp)
                if should_fail(cfg.train.inject_fault, "after_log", epoch, run_folder(cfg)):
                    die()
                state = loop.state_dict()
                state["metrics"] = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
                state.update(extra)
                save_checkpoint(tmp, state, config_yaml=cfg.to_yaml())
                ckpt = ray.train.Checkpoint.from_directory(tmp)
                _log(f"epoch {epoch} done: loss {metrics['loss']:.4f} train_top1 {metrics['train_top1']:.3f} "
                     f"val_top1 {metrics.get('val_top1', float('nan')):.3f} "
                     f"{metrics['images_per_s']:.0f} img/s")
            ray.train.report(metrics, checkpoint=ckpt)
