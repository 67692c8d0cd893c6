"""Training checkpoints: one ``state.pt`` (torch.save of plain tensors/numbers) plus ``config.yaml``.

Every file is written atomically (temp file in the same folder, fsync, ``os.replace``), and ``state.pt``
carries a SHA-256 in ``manifest.json``: a kill mid-write leaves either the old complete checkpoint or
none, never one that half-loads. Loading uses ``torch.load(weights_only=True)``; a file that is not ours
or is corrupt raises a one-line :class:`ConfigError` naming the file.

State keys: ``format`` (= FORMAT), ``model`` (state_dict), ``optimizer``, ``smoother`` (or None),
``scaler`` (or None), ``epoch`` (last finished epoch), ``step`` (next step within ``epoch + 1``: 0 at
epoch ends), ``global_step``, ``rng`` (rank 0's torch CPU RNG state), ``cuda_rng`` (its CUDA one, or None),
``rng_by_rank`` (mid-epoch checkpoints: every rank's ``{"cpu", "cuda"}``, :mod:`.rng`), ``bn_cache`` (per-size BN statistics),
``config`` (resolved config as plain data), ``mlflow_run_id`` (or None), ``metrics`` (last epoch).

``manifest.json`` is the checkpoint's small metadata: besides the checksum it holds ``epoch``, ``step``,
``global_step``, ``mlflow_run_id`` and the numeric ``metrics``, so a driver decides how to resume (and
which MLflow run to continue) without loading the weights, on local or remote (pyarrow) storage alike.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mixsize_ray.atomic import atomic_write_bytes
from mixsize_ray.errors import ConfigError, one_line

FORMAT = "mixsize-ray/checkpoint/v1"
STATE_FILE = "state.pt"
MANIFEST_FILE = "manifest.json"
CONFIG_FILE = "config.yaml"
_META_KEYS = ("epoch", "step", "global_step", "mlflow_run_id")


def save_checkpoint(directory: str | Path, state: dict[str, Any], config_yaml: str | None = None) -> Path:
    """Write ``state`` (see module doc) into ``directory``; return the folder."""
    import io

    directory = Path(directory)
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buf)
    data = buf.getvalue()
    atomic_write_bytes(directory / STATE_FILE, data)
    if config_yaml is not None:
        atomic_write_bytes(directory / CONFIG_FILE, config_yaml.encode())
    manifest = {"format": FORMAT, "sha256": {STATE_FILE: hashlib.sha256(data).hexdigest()},
                **{k: state.get(k) for k in _META_KEYS},
                "metrics": {k: v for k, v in (state.get("metrics") or {}).items()
                            if isinstance(v, int | float) and not isinstance(v, bool)}}
    atomic_write_bytes(directory / MANIFEST_FILE, json.dumps(manifest, indent=2).encode())
    return directory


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint folder (or its ``state.pt``) with ``weights_only=True`` and verify it."""
    path = Path(path)
    state_file = path / STATE_FILE if path.is_dir() else path
    if not state_file.is_file():
        raise ConfigError("checkpoint", f"a mixsize-ray checkpoint folder holding {STATE_FILE}", str(path))
    data = state_file.read_bytes()
    manifest_file = state_file.parent / MANIFEST_FILE
    if manifest_file.is_file():
        try:
            want = json.loads(manifest_file.read_text())["sha256"][STATE_FILE]
        except (ValueError, KeyError, TypeError):
            raise ConfigError("checkpoint", "a readable manifest.json", str(manifest_file)) from None
        if hashlib.sha256(data).hexdigest() != want:
            raise ConfigError("checkpoint", "a file matching its manifest checksum (corrupt or partial)",
                              str(state_file))
    import io

    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means "not ours or corrupt"
        raise ConfigError("checkpoint", "a mixsize-ray checkpoint (torch.load weights_only)", str(state_file),
                          hint=type(e).__name__) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ConfigError("checkpoint", f"a {FORMAT} file", str(state_file), hint="not a mixsize-ray checkpoint")
    return state


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint's small metadata (its ``manifest.json`` and ``config.yaml``), read without the weights.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> _ = save_checkpoint(f"{d}/run/checkpoint_1", {"epoch": 2, "step": 0, "global_step": 30,
        ...                     "mlflow_run_id": "abc", "metrics": {"loss": 0.5}}, config_yaml="train: {}\\n")
        >>> info = latest_checkpoint_info(d, "run")
        >>> info.epoch, info.mlflow_run_id, info.metrics, info.config
        (2, 'abc', {'loss': 0.5}, {'train': {}})
    """

    path: str
    epoch: int
    step: int = 0
    mlflow_run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] | None = None


def _filesystem(storage: str):
    """``(pyarrow filesystem, path)`` for a local folder or a URI (``s3://``, ``gs://``, ``file://`` ...)."""
    import pyarrow.fs

    if "://" in storage:
        try:
            return pyarrow.fs.FileSystem.from_uri(storage)
        except Exception as e:  # noqa: BLE001 - an unknown scheme, a bucket that cannot be reached
            raise ConfigError("ray.storage_path", "a local folder or a pyarrow filesystem URI", storage,
                              hint=one_line(e, 120)) from None
    return pyarrow.fs.LocalFileSystem(), str(Path(storage).expanduser().resolve())


def latest_checkpoint_info(storage: str, name: str) -> CheckpointInfo | None:
    """The newest complete checkpoint of run ``name`` under ``storage`` (a folder or a URI), or None.

    Complete means ``state.pt`` and ``manifest.json`` are both there (the manifest is written last).
    Ray Train names checkpoints ``checkpoint_<timestamp>``, so the newest sorts last.
    """
    import pyarrow.fs

    fs, base = _filesystem(storage)
    run_dir = f"{base.rstrip('/')}/{name}"
    try:
        entries = fs.get_file_info(pyarrow.fs.FileSelector(run_dir, allow_not_found=True))
    except OSError:
        return None
    folders = sorted((e.path for e in entries
                      if e.type == pyarrow.fs.FileType.Directory and e.base_name.startswith("checkpoint_")),
                     reverse=True)
    for folder in folders:
        state, manifest, cfg = fs.get_file_info([f"{folder}/{STATE_FILE}", f"{folder}/{MANIFEST_FILE}",
                                                 f"{folder}/{CONFIG_FILE}"])
        if state.type != pyarrow.fs.FileType.File or manifest.type != pyarrow.fs.FileType.File:
            continue
        with fs.open_input_stream(manifest.path) as f:
            meta = json.loads(f.read().decode())
        config = None
        if cfg.type == pyarrow.fs.FileType.File:
            import yaml

            with fs.open_input_stream(cfg.path) as f:
                config = yaml.safe_load(f.read().decode()) or {}
        where = folder if "://" not in storage else f"{storage.split('://')[0]}://{folder}"
        if "epoch" not in meta:  # written before the manifest carried the metadata: read the state
            old = load_checkpoint(folder) if "://" not in storage else {}
            meta = {**meta, **{k: old.get(k) for k in _META_KEYS}, "metrics": old.get("metrics") or {}}
        return CheckpointInfo(path=where, epoch=int(meta.get("epoch") if meta.get("epoch") is not None else -1),
                              step=int(meta.get("step") or 0), mlflow_run_id=meta.get("mlflow_run_id"),
                              metrics=dict(meta.get("metrics") or {}), config=config)
    return None


def load_good(first: str | Path, run_dir: str | Path | None = None) -> tuple[dict[str, Any], Path, list[str]]:
    """Load checkpoint ``first``; if it is corrupt or partial, the newest older good one in ``run_dir``
    (local storage). Returns ``(state, folder used, [one line per corrupt checkpoint skipped])``; raises the
    first error when no good one is left.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = save_checkpoint(d / "checkpoint_1", {"epoch": 0})
        >>> _ = save_checkpoint(d / "checkpoint_2", {"epoch": 1})
        >>> _ = (d / "checkpoint_2" / STATE_FILE).write_bytes(b"torn")  # a bad disk, a half copy
        >>> state, used, skipped = load_good(d / "checkpoint_2", d)
        >>> state["epoch"], used.name, len(skipped)
        (0, 'checkpoint_1', 1)
    """
    first = Path(first)
    try:
        return load_checkpoint(first), first, []
    except ConfigError as e:
        error, skipped = e, [str(e)]
    if run_dir is None or not Path(run_dir).is_dir():
        raise error
    older = sorted((p for p in Path(run_dir).glob("checkpoint_*") if p.is_dir() and p.name < first.name),
                   key=lambda p: p.name, reverse=True)
    for folder in older:
        try:
            return load_checkpoint(folder), folder, skipped
        except ConfigError as e:
            skipped.append(str(e))
    raise error
