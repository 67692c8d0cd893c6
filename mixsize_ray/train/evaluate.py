"""Evaluate a training checkpoint across image sizes: the size sweep, calibrated and not, with GFLOPs.

:class:`Evaluation` is the job ``mixsize-ray eval`` hands to :func:`mixsize_ray.train.launch.launch`: it
runs in this process, or, when the run names a Ray cluster (``ray.address`` / RAY_ADDRESS, e.g. under
``ray job submit``), on one Ray Train worker with the run's resources (a GPU with ``ray.use_gpu``) through
:func:`eval_func`. Either way the curve comes back as a :class:`~mixsize_ray.core.evaluation.SweepResult`.

Example:
    >>> job = Evaluation("runs/demo/checkpoint_x", sizes="16:32:8", calibrate_batches=None)
    >>> job.sizes, job.progress
    ('16:32:8', True)
    >>> sweep_from_doc({"sizes": [{"size": 16, "top1": 0.5, "top5": 0.9, "top1_calibrated": None,
    ...                 "top5_calibrated": None, "gflops": 0.01, "top1_per_gflop": 50.0}], "model": "m"}).rows[0].size
    16
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mixsize_ray.config import Config, config_from_dict
from mixsize_ray.core.calibration import BNStatsCache, calibrate_sizes_together
from mixsize_ray.core.evaluation import (
    SizeResult,
    SweepPlan,
    SweepResult,
    default_sizes,
    parse_sizes,
    size_sweep,
)
from mixsize_ray.errors import ConfigError
from mixsize_ray.models import build_model
from mixsize_ray.train.checkpoint import load_checkpoint
from mixsize_ray.train.data_bundle import DataBundle
from mixsize_ray.train.precision import resolve as resolve_precision


def evaluate_checkpoint(
    checkpoint: str | Path,
    sizes: str | list[int] | None = None,
    calibrate_batches: int | None = None,
    overrides: list[str] | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> SweepResult:
    """Load ``checkpoint`` (a folder with state.pt), rebuild its model and data from the saved config
    (``overrides`` such as ``data.root=...`` apply on top), and sweep ``sizes`` in this process.

    Calibration: per-size BN statistics saved in the checkpoint are reused for the sizes they cover, the
    others are calibrated on ``calibrate_batches`` training batches (default: the run's
    ``train.calibrate_batches``); an explicit ``calibrate_batches`` recalibrates every size.
    """
    job = Evaluation(str(checkpoint), sizes=sizes, calibrate_batches=calibrate_batches, progress=progress)
    return job.run(checkpoint_config(checkpoint, overrides), device=device)


def _sweep(job: Evaluation, cfg: Config, device: str | torch.device) -> SweepResult:
    """:meth:`Evaluation.run`'s work."""
    checkpoint, sizes, calibrate_batches, progress = job.checkpoint, job.sizes, job.calibrate_batches, job.progress
    state = load_checkpoint(checkpoint)
    n = calibrate_batches or cfg.train.calibrate_batches
    if calibrate_batches is not None:  # the run's calibration rule with the requested batch count
        cfg = config_from_dict(cfg.to_dict(), [f"train.calibrate_batches={n}"])
    data = DataBundle(cfg)
    model = build_model(cfg.model.name, cfg.model.num_classes or data.info.num_classes)
    model.load_state_dict(state["model"])
    device = torch.device(device)
    precision = resolve_precision(cfg.train.amp, cfg.train.channels_last, device)  # as the run trained
    model.to(device).eval()
    if precision.channels_last:
        model.to(memory_format=torch.channels_last)
    min_size = int(getattr(model, "min_size", 1))
    if sizes is None:
        size_list = cfg.train.sweep_sizes or default_sizes(data.info.style, cfg.regime.base_size)
    else:
        size_list = parse_sizes(sizes, min_size=min_size, field="--sizes")
    cache = None
    if calibrate_batches is None and state.get("bn_cache"):
        cache = BNStatsCache.from_state_dict(state["bn_cache"])
    missing = [s for s in size_list if cache is None or s not in cache]
    if missing:  # one pass over the calibration images for every size the cache lacks
        from tqdm.auto import tqdm

        batches = tqdm(data.calibration_together(missing, rank=0), total=n, unit="batch", disable=progress is not True,
                       desc=f"BN calibration, {len(missing)} sizes")
        with precision.autocast(device):
            cache = calibrate_sizes_together(model, batches, n, cache=cache, device=device)
    plan = SweepPlan(size_list, calibration=lambda s: data.calibration_source(s, rank=0), calibration_batches=n,
                     min_size=min_size, metadata=_metadata(cfg, checkpoint))
    with precision.autocast(device):
        return size_sweep(model, plan, data.eval_source(inputs=data.device_inputs(device, precision.channels_last)), cache=cache,
                          device=device, progress=progress)


def _metadata(cfg: Any, checkpoint: str | Path) -> dict[str, Any]:
    return {
        "checkpoint": str(checkpoint),
        "train_sizes": list(cfg.regime.sizes),
        "mode": cfg.regime.mode,
        "sampling": cfg.regime.sampling,
        "model": cfg.model.name,
        "dataset": cfg.data.name,
    }


@dataclass(frozen=True)
class Evaluation:
    """A :func:`~mixsize_ray.train.launch.launch` job: the size sweep of ``checkpoint`` (see
    :func:`evaluate_checkpoint` for ``sizes`` and ``calibrate_batches``)."""

    checkpoint: str
    sizes: str | list[int] | None = None
    calibrate_batches: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        n = self.calibrate_batches
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ConfigError("--calibrate-batches", "an integer >= 1", n)

    def check(self, cfg: Config) -> None:
        """Refuse bad ``sizes`` (a one-line ConfigError) before any work starts: parsed, and none below the
        model's minimum input size."""
        if self.sizes is not None:
            model = build_model(cfg.model.name, cfg.model.num_classes or 10)
            parse_sizes(self.sizes, min_size=int(getattr(model, "min_size", 1)), field="--sizes")

    def run(self, cfg: Config, device: str | torch.device = "cpu") -> SweepResult:
        """The sweep with ``cfg`` (the checkpoint's config with the caller's overrides) on ``device``."""
        return _sweep(self, cfg, device)


def checkpoint_config(checkpoint: str | Path, overrides: list[str] | None = None) -> Config:
    """The config a checkpoint was trained with (``config.yaml`` next to ``state.pt``, else the state's own
    copy), with ``overrides`` (``section.key=value``) on top."""
    folder = Path(checkpoint)
    folder = folder if folder.is_dir() else folder.parent
    if (folder / "config.yaml").is_file():
        import yaml

        return config_from_dict(yaml.safe_load((folder / "config.yaml").read_text()) or {}, overrides)
    return config_from_dict(load_checkpoint(checkpoint)["config"], overrides)


def sweep_from_doc(doc: dict[str, Any]) -> SweepResult:
    """A :class:`SweepResult` back from its :meth:`~SweepResult.to_dict` document (without the BN cache)."""
    rows = [SizeResult(**r) for r in doc["sizes"]]
    return SweepResult(rows=rows, metadata={k: v for k, v in doc.items() if k != "sizes"})


def eval_func(config: dict[str, Any]) -> None:
    """Ray Train worker entry of an :class:`Evaluation` (one worker): ``config`` is ``{"config": <Config as
    plain data>, "job": Evaluation}``; reports a checkpoint holding ``sweep.json`` (the curve document)."""
    import ray.train
    import ray.train.torch

    cfg = config_from_dict(config["config"])
    torch.set_num_threads(max(1, int(cfg.ray.cpus_per_worker)))
    job: Evaluation = config["job"]
    result = job.run(cfg, device=ray.train.torch.get_device())
    import tempfile

    with tempfile.TemporaryDirectory() as d:  # Ray Train hands a run's result back with its checkpoint
        (Path(d) / "sweep.json").write_text(json.dumps(result.to_dict()))
        ray.train.report({"sizes": len(result.rows)}, checkpoint=ray.train.Checkpoint.from_directory(d))
