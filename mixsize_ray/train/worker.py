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
from mixsize_ray.train.checkpoint import load_checkpoint, save_checkpoint
from mixsize_ray.train.loop import TrainingLoop

SWEEP_JSON = "sweep.json"
SWEEP_PNG = "sweep.png"


def _log(msg: str) -> None:
    # straight to stdout: Ray Train V2 patches print() into its logger, which shows every line twice
    sys.stdout.write(f"[mixsize-ray] {msg}\n")
    sys.stdout.flush()


def train_func(config: dict[str, Any]) -> None:
    """Per-worker entry point for :class:`ray.train.torch.TorchTrainer`."""
    cfg = config_from_dict(config["config"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    threads = max(1, int(cfg.ray.cpus_per_worker))
    torch.set_num_threads(threads)
    device = ray.train.torch.get_device()
    loop = TrainingLoop(cfg, rank=rank, world_size=world, device=device,
                        wrap_model=ray.train.torch.prepare_model,
                        log=_log)
    extra: dict[str, Any] = {}
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = load_checkpoint(d)
        loop.load_state_dict(state)
        extra["mlflow_run_id"] = state.get("mlflow_run_id")
        _log(f"resuming from checkpoint after epoch {state['epoch']} (global step {loop.global_step})")
    else:
        _log(f"starting: {loop.budget_summary()}, world size {world}, device {device}")
    if loop.done:
        _log("run already complete: nothing to train")
        return
    loop.warmup()
    while not loop.done:
        metrics = loop.train_epoch()
        epoch = metrics["epoch"]
        last = loop.done
        if rank == 0 and ((epoch + 1) % cfg.train.eval_every == 0 or last):
            metrics["val_top1"] = loop.validate()
        if last:
            loop.calibrate()  # collective: every rank
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if rank == 0:
                if last:
                    result = loop.sweep(progress=False)
                    doc = result.to_dict()
                    Path(tmp, SWEEP_JSON).write_text(json.dumps(doc, indent=2))
                    result.plot(os.path.join(tmp, SWEEP_PNG))
                    for row in doc["sizes"]:
                        metrics[f"sweep_top1_{row['size']}"] = row["top1"]
                        if row.get("top1_calibrated") is not None:
                            metrics[f"sweep_top1_calibrated_{row['size']}"] = row["top1_calibrated"]
                state = loop.state_dict()
                state["metrics"] = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
                state.update(extra)
                save_checkpoint(tmp, state, config_yaml=cfg.to_yaml())
                ckpt = ray.train.Checkpoint.from_directory(tmp)
                _log(f"epoch {epoch} done: loss {metrics['loss']:.4f} train_top1 {metrics['train_top1']:.3f} "
                     f"val_top1 {metrics.get('val_top1', float('nan')):.3f} "
                     f"{metrics['images_per_s']:.0f} img/s")
            ray.train.report(metrics, checkpoint=ckpt)
