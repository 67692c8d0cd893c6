"""The one naming of the accuracy-vs-size curve inside a flat metrics dict (a Ray Train / Tune report).

The worker writes the end-of-run sweep into its last report with :func:`sweep_report`; every reader
(objectives, the search report, benchmarks) gets it back with :func:`curve_from_metrics`. Nothing else
spells the key names.

Example:
    >>> doc = {"sizes": [{"size": 16, "top1": 0.5, "top1_calibrated": 0.6}, {"size": 32, "top1": 0.9}]}
    >>> m = sweep_report(doc)
    >>> sorted(m.items())
    [('sweep_top1_16', 0.5), ('sweep_top1_32', 0.9), ('sweep_top1_calibrated_16', 0.6)]
    >>> curve_from_metrics(m, calibrated=True)
    {16: 0.6}
    >>> sweep_metric(32, calibrated=False), is_sweep_metric("sweep_top1_32"), is_sweep_metric("val_top1")
    ('sweep_top1_32', True, False)
"""

from __future__ import annotations

from typing import Any

_RAW = "sweep_top1_"
_CALIBRATED = "sweep_top1_calibrated_"


def sweep_metric(size: int, calibrated: bool) -> str:
    """The report key of top-1 at evaluation ``size`` (after BN calibration when ``calibrated``)."""
    return f"{_CALIBRATED if calibrated else _RAW}{int(size)}"


def is_sweep_metric(key: str) -> bool:
    """Whether ``key`` is one point of a curve (raw or calibrated)."""
    return key.startswith(_RAW)


def sweep_report(doc: dict[str, Any]) -> dict[str, float]:
    """The curve of a sweep document (``SweepResult.to_dict()``: ``{"sizes": [{"size", "top1",
    "top1_calibrated"?}, ...]}``) as report keys; a missing calibrated value is left out."""
    out: dict[str, float] = {}
    for row in doc["sizes"]:
        out[sweep_metric(row["size"], calibrated=False)] = row["top1"]
        if row.get("top1_calibrated") is not None:
            out[sweep_metric(row["size"], calibrated=True)] = row["top1_calibrated"]
    return out


def curve_from_metrics(metrics: dict[str, Any], calibrated: bool) -> dict[int, float]:
    """``{size: top-1}`` read back from a report written by :func:`sweep_report`, sizes ascending."""
    prefix = _CALIBRATED if calibrated else _RAW
    pts = {int(k[len(prefix):]): float(v) for k, v in metrics.items()
           if k.startswith(prefix) and k[len(prefix):].isdigit() and v is not None}
    return dict(sorted(pts.items()))
