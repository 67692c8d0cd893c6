"""Everything the driver checks and decides before any worker starts, as one typed :class:`Preflight`.

Checks raise a one-line :class:`ConfigError` (the CLI exits 2) and create nothing: the worker count; the
regime, solved here ONCE from the real training-set size with world size = ``ray.num_workers`` (the table
the CLI prints is the table the workers train with: it travels to them); a reachable RAY_ADDRESS; the
data folder; a reachable MLflow store; a writable storage path (checked on its nearest existing parent, so
a refused run leaves no folder behind); and an existing run of the same name whose config differs (a re-run
of the same name resumes, it never silently starts over or mixes two configs).

Example:
    >>> from mixsize_ray.config import load_config
    >>> cfg = load_config("search_spaces/cifar_s28_dplus.yaml", ["tracking.enabled=false",
    ...                   "data.train_size=640", "train.output_dir=/tmp/mixsize-doc-runs"])
    >>> p = preflight(cfg)
    >>> p.table.num_images, p.resume, p.run_dir
    (640, None, '/tmp/mixsize-doc-runs/mixsize')
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixsize_ray.atomic import creatable
from mixsize_ray.config import Config
from mixsize_ray.core.regime import RegimeTable, regime_from_config
from mixsize_ray.errors import ConfigError, one_line
from mixsize_ray.train.checkpoint import CheckpointInfo, latest_checkpoint_info
from mixsize_ray.train.cluster import check_address

# Config sections (and keys) that must match for a re-run of the same name to resume it.
_RESUME_KEYS = ("data", "model", "regime", "optim")
_RESUME_IGNORED = {"data.num_workers"}


@dataclass(frozen=True)
class Start:
    """A scheduler's request to begin a run elsewhere than at its own last checkpoint (PBT's exploit step).

    checkpoint: a checkpoint folder of ANOTHER run to start from (used only while the run has none of its own);
        its config may differ from this run's in the ``may_change`` keys (``section.key``) and nowhere else
        of data/model/regime/optim. A plain re-run never sets it: a changed regime on resume stays refused.
    stop_after_epoch: the last epoch to train in this call (the LR schedule still spans ``train.epochs``).
    mlflow_run_id: the MLflow run to continue when the run has no checkpoint of its own yet.

    Example:
        >>> Start("/runs/trial_0001/checkpoint_x", stop_after_epoch=3, may_change=("regime.probs",)).may_change
        ('regime.probs',)
    """

    checkpoint: str | None = None
    stop_after_epoch: int | None = None
    mlflow_run_id: str | None = None
    may_change: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Preflight:
    """What the driver established: the solved regime, where the run lives, what it resumes, where it logs.

    table: the solved regime for the real dataset size and world size (sent to every worker).
    storage: Ray Train's storage path (absolute folder or URI); the run is ``storage/train.name``.
    address: the Ray cluster to join, or None for a local one.
    resume: the newest complete checkpoint of a run with this name (None: a fresh run).
    tracking_uri: the resolved MLflow URI, checked to answer (None: tracking off).
    """

    table: RegimeTable
    storage: str
    name: str
    address: str | None = None
    resume: CheckpointInfo | None = None
    tracking_uri: str | None = None
    start: Start | None = None

    @property
    def run_dir(self) -> str:
        return f"{self.storage.rstrip('/')}/{self.name}"

    def completed(self, epochs: int) -> bool:
        """Whether the resumed run already finished all ``epochs`` (nothing left to train)."""
        return self.resume is not None and self.resume.epoch >= epochs - 1


def storage_path(cfg: Config) -> str:
    """Where Ray Train keeps the run: ray.storage_path, else train.output_dir (made absolute)."""
    p = cfg.ray.storage_path or cfg.train.output_dir
    if "://" in p:
        return p
    return str(Path(p).expanduser().resolve())


def check_storage(path: str) -> None:
    """A local storage path must be creatable: its nearest existing parent is a writable folder. Nothing
    is created here (Ray Train makes the folder when the run starts). A URI must name a filesystem
    pyarrow knows."""
    if "://" in path:
        import pyarrow.fs

        try:
            pyarrow.fs.FileSystem.from_uri(path)
        except Exception as e:  # noqa: BLE001
            raise ConfigError("ray.storage_path", "a local folder or a pyarrow filesystem URI", path,
                              hint=one_line(e, 120)) from None
        return
    why = creatable(path)
    if why is not None:
        raise ConfigError("ray.storage_path", "a writable folder", path, hint=why)


def _diff(a: dict[str, Any], b: dict[str, Any], ignored: frozenset[str] | set[str] = frozenset()) -> list[str]:
    out = []
    for sec in _RESUME_KEYS:
        for k in sorted(set(a.get(sec, {})) | set(b.get(sec, {}))):
            if f"{sec}.{k}" in _RESUME_IGNORED or f"{sec}.{k}" in ignored:
                continue
            if a.get(sec, {}).get(k) != b.get(sec, {}).get(k):
                out.append(f"{sec}.{k}: {a.get(sec, {}).get(k)!r} -> {b.get(sec, {}).get(k)!r}")
    return out


def check_resume_compatible(cfg: Config, storage: str) -> CheckpointInfo | None:
    """The newest checkpoint of ``train.name`` (local or remote storage); its config must match on
    data/model/regime/optim."""
    info = latest_checkpoint_info(storage, cfg.train.name)
    if info is None:
        return None
    diff = _diff(info.config or {}, cfg.to_dict())
    if diff:
        raise ConfigError("train.name", "a new run name, or the config the existing run used",
                          cfg.train.name, hint=f"{info.path} differs: {'; '.join(diff[:3])}")
    return info


def check_start_compatible(cfg: Config, start: Start) -> None:
    """``start.checkpoint``'s config may differ from ``cfg`` in ``start.may_change`` only (a one-line
    :class:`ConfigError` naming the first differences otherwise)."""
    import yaml

    from mixsize_ray.train.checkpoint import CONFIG_FILE

    path = Path(start.checkpoint or "")
    if not (path / CONFIG_FILE).is_file():
        raise ConfigError("start.checkpoint", f"a checkpoint folder holding {CONFIG_FILE}", str(path))
    old = yaml.safe_load((path / CONFIG_FILE).read_text()) or {}
    diff = _diff(old, cfg.to_dict(), set(start.may_change))
    if diff:
        raise ConfigError("start.checkpoint", f"a checkpoint whose config differs only in {list(start.may_change)}",
                          str(path), hint="; ".join(diff[:3]))


_SOLVED: dict[str, RegimeTable] = {}


def solve_table(cfg: Config, num_images: int | None = None) -> RegimeTable:
    """The regime solved for the real training-set size and world size, once per process: the loader
    preview, the preflight and the printed table share one solved table. ``num_images`` is the training
    set's length when the caller has built it; else it is counted without decoding (an ImageFolder's files)."""
    import json

    from mixsize_ray.data.counts import count_train_images

    d = cfg.data
    if num_images is None:
        num_images = count_train_images(d.name, d.root, d.train_size)
    regime = regime_from_config(cfg, world_size=cfg.ray.num_workers, num_images=num_images)
    key = json.dumps([cfg.to_dict()["regime"], regime.world_size, regime.num_images, regime.lr_rule,
                      regime.lr_by], sort_keys=True)
    if key not in _SOLVED:
        _SOLVED[key] = regime.solve()
    return _SOLVED[key]


def preflight(cfg: Config, training: bool = True, start: Start | None = None) -> Preflight:
    """All checks that need no worker, in an order that creates nothing before the last one passes.
    ``training=False`` (an evaluation: it writes no run and logs nowhere) skips the tracking, resume and
    storage checks. ``start``: see :class:`Start` (checked only while the run has no checkpoint of its own)."""
    if cfg.ray.num_workers < 1:
        raise ConfigError("ray.num_workers", ">= 1", cfg.ray.num_workers)
    num_images = None
    if cfg.data.name != "shapes":  # a missing or malformed data folder fails here, not in a worker
        from mixsize_ray.data.datasets import build_dataset

        d = cfg.data
        num_images = len(build_dataset(d.name, d.root, "train", size=d.train_size, seed=d.seed))
    table = solve_table(cfg, num_images)  # the workers' training set has exactly this length
    storage = storage_path(cfg)
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    if address:
        check_address(address)
    elif cfg.ray.use_gpu and not cfg.ray.autoscaling:  # a local cluster has this machine's GPUs, no more
        import torch

        if torch.cuda.device_count() < cfg.ray.num_workers:
            raise ConfigError("ray.use_gpu", f"a machine with >= {cfg.ray.num_workers} GPUs, or ray.address of a "
                              "GPU cluster", True, hint=f"this machine has {torch.cuda.device_count()}")
    if not training:
        return Preflight(table=table, storage=storage, name=cfg.train.name, address=address)
    tracking_uri = None
    if cfg.tracking.enabled:  # an MLflow store that does not answer stops the run here, naming the URI
        from mixsize_ray.tracking.uri import check_reachable, resolve_tracking_uri

        tracking_uri = resolve_tracking_uri(cfg.tracking.uri)
        check_reachable(tracking_uri, cfg.tracking.timeout_s)
    check_storage(storage)  # creates nothing (a folder made and removed at once)
    resume = check_resume_compatible(cfg, storage)
    if start is not None and start.checkpoint and resume is None:
        check_start_compatible(cfg, start)
    return Preflight(table=table, storage=storage, name=cfg.train.name, address=address, resume=resume,
                     tracking_uri=tracking_uri, start=start)
