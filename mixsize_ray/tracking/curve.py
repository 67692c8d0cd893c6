"""Metrics as MLflow keys (named in :mod:`mixsize_ray.tracking.keys`): per-epoch training metrics, and the
accuracy-vs-size curve.

The curve is logged with ``step = image size``, so MLflow's chart of ``accuracy_vs_size/top1_calibrated``
IS the accuracy-vs-size curve and overlaying runs compares regimes. Each size also gets its own scalar
(``at_size/top1_32``, ``at_size/top1_calibrated_32``) so the runs table can be sorted by accuracy at one
size.

Example:
    >>> doc = {"sizes": [{"size": 16, "top1": 0.5, "top5": 0.9, "top1_calibrated": 0.6,
    ...                   "top5_calibrated": 0.95, "gflops": 0.01, "top1_per_gflop": 60.0}]}
    >>> sorted((k, v, s) for k, v, s in curve_metrics(doc, epoch=3) if "top1_calibrated" in k)
    [('accuracy_vs_size/top1_calibrated', 0.6, 16), ('at_size/top1_calibrated_16', 0.6, 3)]
    >>> epoch_metrics({"epoch": 2, "loss": 1.5, "step": 40, "step_time_16": 0.1, "sweep_top1_16": 0.5})
    {'train/loss': 1.5, 'train/global_step': 40.0, 'step_time/16': 0.1}
"""

from __future__ import annotations

import math
from typing import Any

from mixsize_ray.tracking.keys import AT_SIZE_FIELDS, CURVE_FIELDS, at_size, epoch_key

# per-epoch keys that are not logged as epoch metrics (the epoch is the step; the sweep has its own keys)
_SKIP_EPOCH = ("epoch",)
_SKIP_PREFIX = ("sweep_",)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def epoch_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric, finite per-epoch metrics under their MLflow keys (:func:`~mixsize_ray.tracking.keys.epoch_key`;
    the MLflow step is the epoch); the epoch index and ``sweep_*`` keys are left out."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if k in _SKIP_EPOCH or k.startswith(_SKIP_PREFIX) or not _number(v):
            continue
        out[epoch_key(k)] = float(v)
    return out


def curve_metrics(doc: dict[str, Any], epoch: int = 0) -> list[tuple[str, float, int]]:
    """``(key, value, step)`` for a sweep document (:meth:`SweepResult.to_dict`).

    Per size S: each curve key of :data:`~mixsize_ray.tracking.keys.CURVE_FIELDS` at step S, and
    ``at_size/<field>_<S>`` at step ``epoch`` for top1 and top1_calibrated. Missing (None) values are
    skipped.
    """
    out: list[tuple[str, float, int]] = []
    for row in sorted(doc["sizes"], key=lambda r: r["size"]):
        s = int(row["size"])
        for field, key in CURVE_FIELDS.items():
            if _number(row.get(field)):
                out.append((key, float(row[field]), s))
        for field in AT_SIZE_FIELDS:
            if _number(row.get(field)):
                out.append((at_size(field, s), float(row[field]), int(epoch)))
    return out
