"""Shared helpers: the machine a result ran on, the configs the benchmarks train, results as JSON under
benchmarks/results/."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from mixsize_ray.config import Config, load_config

RESULTS = Path(__file__).resolve().parent / "results"
PRESETS = Path(__file__).resolve().parents[1] / "search_spaces"
QUIET = ["tracking.enabled=false", "train.eval_every=1000", "train.calibrate_batches=1", "train.sweep_sizes=[32]"]
"""Overrides every benchmark run shares: no MLflow, no validation and the smallest end-of-run sweep, so the
timed windows hold training only."""


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
        "torch": torch.__version__,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def preset_config(preset: str, sets: list[str]) -> Config:
    """``search_spaces/<preset>.yaml`` with the quiet overrides and ``sets`` (later wins).

    Example:
        >>> cfg = preset_config("cifar_s28_bplus", ["data.train_size=512"])
        >>> cfg.regime.mode, cfg.data.train_size, cfg.tracking.enabled
        ('B+', 512, False)
    """
    return load_config(PRESETS / f"{preset}.yaml", [*QUIET, *sets])


def write_result(name: str, doc: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": machine(), **doc}, indent=2))
    print(f"[bench] wrote {path}")
    return path
