"""Where ``mixsize-ray pick`` reads from: a run folder, a checkpoint folder or a ``state.pt``, to the checkpoint,
its accuracy-vs-size curve and its model with the per-size BN statistics.

* :func:`resolve_source` (paths only, nothing loaded): a checkpoint folder (holding ``state.pt``), the
  ``state.pt`` itself, or a run folder holding Ray Train's ``checkpoint_*`` folders (the newest complete
  one with a ``sweep.json``, else the newest complete one).
* :func:`load_curve`: the curve from the checkpoint's ``sweep.json`` (the end-of-run sweep), or, without
  one or when sizes are asked for, the sweep computed now by
  :func:`~mixsize_ray.train.evaluate.evaluate_checkpoint` (the checkpoint's BN statistics reused, the
  missing sizes calibrated by the run's rule).
* :func:`load_served`: the model with its weights and BN statistics cache, rebuilt from the saved config.

Example:
    >>> import tempfile
    >>> from mixsize_ray.train.checkpoint import save_checkpoint
    >>> run = Path(tempfile.mkdtemp())
    >>> _ = save_checkpoint(run / "checkpoint_1", {"epoch": 0})
    >>> _ = save_checkpoint(run / "checkpoint_2", {"epoch": 1})
    >>> _ = (run / "checkpoint_1" / SWEEP_FILE).write_text("{}")
    >>> src = resolve_source(str(run))
    >>> src.checkpoint.name, src.sweep_json.name
    ('checkpoint_1', 'sweep.json')
    >>> resolve_source(str(run / "checkpoint_2" / "state.pt")).sweep_json is None
    True
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mixsize_ray.config import Config
from mixsize_ray.core.calibration import BNStatsCache
from mixsize_ray.core.evaluation import SizeResult
from mixsize_ray.errors import ConfigError
from mixsize_ray.models import build_model
from mixsize_ray.train.checkpoint import MANIFEST_FILE, STATE_FILE, load_checkpoint
from mixsize_ray.train.data_bundle import resolve_data
from mixsize_ray.train.evaluate import checkpoint_config, evaluate_checkpoint, sweep_from_doc

SWEEP_FILE = "sweep.json"
_WHAT = "a checkpoint folder (holding state.pt), a state.pt, or a run folder holding checkpoint_* folders"


@dataclass(frozen=True)
class ServingSource:
    """A resolved ``RUN_OR_CHECKPOINT``: the checkpoint folder and its ``sweep.json`` (None if absent)."""

    checkpoint: Path
    sweep_json: Path | None


def _complete(folder: Path) -> bool:
    return (folder / STATE_FILE).is_file() and (folder / MANIFEST_FILE).is_file()


def resolve_source(arg: str) -> ServingSource:
    """Resolve ``arg`` (rules in the module doc) without loading anything.

    Raises:
        ConfigError: ``RUN_OR_CHECKPOINT`` names none of those.
    """
    path = Path(arg).expanduser()
    if path.is_file() and path.name == STATE_FILE:
        folder = path.parent
    elif path.is_dir() and (path / STATE_FILE).is_file():
        folder = path
    elif path.is_dir():
        found = sorted((p for p in path.glob("checkpoint_*") if p.is_dir() and _complete(p)),
                       key=lambda p: p.name, reverse=True)
        if not found:
            raise ConfigError("RUN_OR_CHECKPOINT", _WHAT, arg)
        folder = next((p for p in found if (p / SWEEP_FILE).is_file()), found[0])
    else:
        raise ConfigError("RUN_OR_CHECKPOINT", _WHAT, arg)
    sweep = folder / SWEEP_FILE
    return ServingSource(checkpoint=folder, sweep_json=sweep if sweep.is_file() else None)


@dataclass
class Curve:
    """The accuracy-vs-size curve (``rows`` ascending by size), where it came from (``"sweep.json"`` or
    ``"evaluated now"``), and the BN statistics the sweep computed (None when read from ``sweep.json``)."""

    rows: list[SizeResult]
    origin: str
    cache: BNStatsCache | None = None


def load_curve(src: ServingSource, sizes: str | None = None, overrides: list[str] | None = None,
               device: str = "cpu") -> Curve:
    """The curve of ``src``: its ``sweep.json`` unless ``sizes`` is given or there is none, else the sweep of
    ``sizes`` (default: the run's sweep sizes) computed now on ``device``.

    Raises:
        ConfigError: an unreadable ``sweep.json``; bad ``sizes`` (``--sizes``).
    """
    if sizes is None and src.sweep_json is not None:
        try:
            doc = json.loads(src.sweep_json.read_text())
            rows = sweep_from_doc(doc).rows
        except (ValueError, KeyError, TypeError):
            raise ConfigError("sweep.json", "a size-sweep document (mixsize-ray eval --json)",
                              str(src.sweep_json)) from None
        return Curve(rows=sorted(rows, key=lambda r: r.size), origin=SWEEP_FILE)
    result = evaluate_checkpoint(src.checkpoint, sizes=sizes, overrides=overrides, progress=False, device=device)
    return Curve(rows=list(result.rows), origin="evaluated now", cache=result.cache)


@dataclass
class Served:
    """The checkpoint's model (CPU, eval mode, trained weights), its config and per-size BN statistics
    (None when the checkpoint has none)."""

    model: nn.Module
    config: Config
    cache: BNStatsCache | None


def load_served(src: ServingSource, overrides: list[str] | None = None) -> Served:
    """Rebuild the model of ``src`` from its saved config and load its weights and BN statistics cache."""
    cfg = checkpoint_config(src.checkpoint, overrides)
    state = load_checkpoint(src.checkpoint)
    num_classes = cfg.model.num_classes or resolve_data(cfg)[0].num_classes
    model = build_model(cfg.model.name, num_classes)
    model.load_state_dict(state["model"])
    cache = BNStatsCache.from_state_dict(state["bn_cache"]) if state.get("bn_cache") else None
    return Served(model=model.to(torch.device("cpu")).eval(), config=cfg, cache=cache if cache else None)
