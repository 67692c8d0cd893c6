"""Evaluate a training checkpoint across image sizes: the size sweep, calibrated and not, with GFLOPs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mixsize_ray.config import config_from_dict
from mixsize_ray.core.calibration import BNStatsCache
from mixsize_ray.core.evaluation import SweepResult, default_sizes, parse_sizes, size_sweep
from mixsize_ray.errors import ConfigError
from mixsize_ray.models import build_model
from mixsize_ray.train.checkpoint import load_checkpoint
from mixsize_ray.train.data_bundle import DataBundle


def evaluate_checkpoint(
    checkpoint: str | Path,
    sizes: str | list[int] | None = None,
    calibrate_batches: int | None = None,
    overrides: list[str] | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> SweepResult:
    """Load ``checkpoint`` (a folder with state.pt), rebuild its model and data from the saved config
    (``overrides`` such as ``data.root=...`` apply on top), and sweep ``sizes``.

    Calibration: per-size BN statistics saved in the checkpoint are reused for the sizes they cover, the
    others are calibrated on ``calibrate_batches`` training batches (default: the run's
    ``train.calibrate_batches``); an explicit ``calibrate_batches`` recalibrates every size.
    """
    state = load_checkpoint(checkpoint)
    cfg = config_from_dict(state["config"], overrides)
    if calibrate_batches is not None and (isinstance(calibrate_batches, bool) or calibrate_batches < 1):
        raise ConfigError("--calibrate-batches", "an integer >= 1", calibrate_batches)
    data = DataBundle(cfg)
    model = build_model(cfg.model.name, cfg.model.num_classes or data.info.num_classes)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    min_size = int(getattr(model, "min_size", 1))
    if sizes is None:
        size_list = cfg.train.sweep_sizes or default_sizes(data.info.style, cfg.regime.base_size)
    else:
        size_list = parse_sizes(sizes, min_size=min_size, field="--sizes")
    cache = None
    if calibrate_batches is None and state.get("bn_cache"):
        cache = BNStatsCache.from_state_dict(state["bn_cache"])
    n = calibrate_batches or cfg.train.calibrate_batches
    if calibrate_batches is not None:  # the run's rule with the requested batch count
        cfg.train.calibrate_batches = n
    return size_sweep(
        model,
        size_list,
        data.eval_batches,
        lambda s: data.calibration_source(s, rank=0),
        num_calib_batches=n,
        min_size=min_size,
        progress=progress,
        device=device,
        cache=cache,
        metadata=_metadata(cfg, checkpoint),
    )


def _metadata(cfg: Any, checkpoint: str | Path) -> dict[str, Any]:
    return {
        "checkpoint": str(checkpoint),
        "train_sizes": list(cfg.regime.sizes),
        "mode": cfg.regime.mode,
        "sampling": cfg.regime.sampling,
        "model": cfg.model.name,
        "dataset": cfg.data.name,
    }
