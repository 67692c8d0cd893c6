"""Training checkpoints: one ``state.pt`` (torch.save of plain tensors/numbers) plus ``config.yaml``.

Every file is written atomically (temp file in the same folder, fsync, ``os.replace``), and ``state.pt``
carries a SHA-256 in ``manifest.json``: a kill mid-write leaves either the old complete checkpoint or
none, never one that half-loads. Loading uses ``torch.load(weights_only=True)``; a file that is not ours
or is corrupt raises a one-line :class:`ConfigError` naming the file.

State keys: ``format`` (= FORMAT), ``model`` (state_dict), ``optimizer``, ``smoother`` (or None),
``scaler`` (or None), ``epoch`` (last finished epoch), ``step`` (next step within ``epoch + 1``: 0 at
epoch ends), ``global_step``, ``rng`` (torch CPU RNG state), ``bn_cache`` (per-size BN statistics),
``config`` (resolved config as plain data), ``mlflow_run_id`` (or None), ``metrics`` (last epoch).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from mixsize_ray.atomic import atomic_write_bytes
from mixsize_ray.errors import ConfigError

FORMAT = "mixsize-ray/checkpoint/v1"
STATE_FILE = "state.pt"
MANIFEST_FILE = "manifest.json"
CONFIG_FILE = "config.yaml"


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
    manifest = {"format": FORMAT, "sha256": {STATE_FILE: hashlib.sha256(data).hexdigest()}}
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
