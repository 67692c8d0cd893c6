"""Metrics as MLflow keys: per-epoch training metrics, and the accuracy-vs-size curve.

The curve is logged with ``step = image size``, so MLflow's chart of ``top1_calibrated_vs_size`` IS the
accuracy-vs-size curve and overlaying runs compares regimes. Each size also gets its own key
(``top1_at_32``, ``top1_calibrated_at_32``) so the runs table can be sorted by accuracy at one size.

Example:
    >>> doc = {"sizes": [{"size": 16, "top1": 0.5, "top5": 0.9, "top1_calibrated": 0.6,
    ...                   "top5_calibrated": 0.95, "gflops": 0.01, "top1_per_gflop": 50.0}]}
    >>> sorted((k, v, s) for k, v, s in curve_metrics(doc, epoch=3) if k.startswith("top1_calibrated"))[:2]
    [('top1_calibrated_at_16', 0.6, 3), ('top1_calibrated_per_gflop_at_16', 60.0, 3)]
"""

from __future__ import annotations

import math
from typing import Any

CURVE_KEYS = ("top1", "top5", "top1_calibrated", "top5_calibrated", "gflops", "top1_per_gflop")
# per-epoch keys that are not logged as epoch metrics (the epoch is the step; the sweep has its own keys)
_SKIP_EPOCH = ("epoch",)
_SKIP_PREFIX = ("sweep_",)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def epoch_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric, finite per-epoch metrics; ``step`` is renamed ``global_step`` (the MLflow step is the
    epoch), the epoch index and ``sweep_*`` keys are left out."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if k in _SKIP_EPOCH or k.startswith(_SKIP_PREFIX) or not _number(v):
            continue
        out["global_step" if k == "step" else k] = float(v)
    return out


def curve_metrics(doc: dict[str, Any], epoch: int = 0) -> list[tuple[str, float, int]]:
    """``(key, value, step)`` for a sweep document (:meth:`SweepResult.to_dict`).

    Per size S: ``<m>_vs_size`` at step S for m in top1, top5, top1_calibrated, top5_calibrated, gflops,
    top1_per_gflop, top1_calibrated_per_gflop; and ``<m>_at_<S>`` at step ``epoch`` for top1,
    top1_calibrated, top1_per_gflop, top1_calibrated_per_gflop, gflops. Missing (None) values are skipped.
    """
    out: list[tuple[str, float, int]] = []
    for row in sorted(doc["sizes"], key=lambda r: r["size"]):
        s = int(row["size"])
        values = {k: row.get(k) for k in CURVE_KEYS}
        cal, g = values["top1_calibrated"], values["gflops"]
        values["top1_calibrated_per_gflop"] = cal / g if _number(cal) and _number(g) and g > 0 else None
        for k, v in values.items():
            if _number(v):
                out.append((f"{k}_vs_size", float(v), s))
        for k in ("top1", "top1_calibrated", "top1_per_gflop", "top1_calibrated_per_gflop", "gflops"):
            if _number(values[k]):
                out.append((f"{k}_at_{s}", float(values[k]), int(epoch)))
    return out
