"""Per-size numbers of one traced run (``train.step_trace``, :mod:`mixsize_ray.train.step_trace`): what
``make gpu-check`` reports for each regime.

A step's ``seconds`` run from the previous step's end (or its epoch's start) to its own end, waiting for the
batch included; ``compute`` is that minus the loop's host wait for the batch. The first step of each epoch
holds the loader's start: it is kept out of medians and re-tunes (``first_ms`` lists it) unless a size has no
other step. A re-tune is a step whose compute time exceeds :data:`RETUNE_FACTOR` times its size's median
(with ``cudnn.benchmark`` a conv shape the warm-up missed is re-tuned on first use; allocator growth shows the
same way).

Example:
    >>> steps = [{"size": 16, "images": 8, "wait": 0.0, "host": 0.1, "seconds": s, "peak_bytes": None,
    ...           "new_graphs": None, "epoch_first": k == 0} for k, s in enumerate([0.9, 0.1, 0.1, 0.5])]
    >>> row = size_row(Shape(16, batch=4, duplicates=2, step_share=1.0, rows=8), steps, flops=10**12)
    >>> row["steps"], row["timed"], row["median_ms"], row["retunes"], row["first_ms"], row["tflops"]
    (4, 3, 100.0, 1, [900.0], 10.0)
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

RETUNE_FACTOR = 3.0


@dataclass(frozen=True)
class Shape:
    """One entry of a solved table: ``size`` px, GLOBAL ``batch``, ``duplicates``, ``step_share`` (p_i, the
    share of steps) and ``rows`` = batch / world size x duplicates, the images one rank feeds per step."""

    size: int
    batch: int
    duplicates: int
    step_share: float
    rows: int


def _ms(x: float | None) -> float | None:
    return None if x is None else 1e3 * x


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def size_row(shape: Shape, steps: list[dict[str, Any]], flops: int) -> dict[str, Any]:
    """The numbers of one size from its traced ``steps``; ``flops``: one rank's forward+backward FLOPs."""
    timed = [s for s in steps if not s["epoch_first"]] or steps
    compute = [max(s["seconds"] - s["wait"], 0.0) for s in timed]
    med, med_compute = _median([s["seconds"] for s in timed]), _median(compute)
    peaks = [s["peak_bytes"] for s in steps if s["peak_bytes"] is not None]
    graphs = [s["new_graphs"] for s in timed if s["new_graphs"] is not None]
    return {
        **asdict(shape),
        "steps": len(steps), "timed": len(timed),
        "median_ms": _ms(med), "compute_median_ms": _ms(med_compute),
        "wait_median_ms": _ms(_median([s["wait"] for s in timed])),
        "step_ms": [round(1e3 * s["seconds"], 3) for s in timed],
        "first_ms": [round(1e3 * s["seconds"], 3) for s in steps if s["epoch_first"]],
        "peak_mib": max(peaks) / 2**20 if peaks else None,
        "retunes": sum(c > RETUNE_FACTOR * med_compute for c in compute) if compute else None,
        "recompiles": sum(graphs) if graphs else None,
        "flops_per_step": flops,
        "tflops": flops / med / 1e12 if med else None,
    }


def size_rows(trace: dict[str, Any], shapes: list[Shape], flops: dict[int, int]) -> list[dict[str, Any]]:
    """:func:`size_row` for every shape of the table (a size the run never trained has ``steps`` 0)."""
    by_size: dict[int, list[dict[str, Any]]] = {}
    for s in trace["steps"]:
        by_size.setdefault(int(s["size"]), []).append(s)
    return [size_row(sh, by_size.get(sh.size, []), flops[sh.size]) for sh in shapes]


def weighted(rows: list[dict[str, Any]], key: str) -> float | None:
    """sum_i p_i * row_i[key] over the table (p_i: step share); None when a size has no value."""
    if any(r[key] is None for r in rows):
        return None
    return sum(r["step_share"] * r[key] for r in rows)


def phase_seconds(trace: dict[str, Any]) -> dict[str, float]:
    """Seconds per traced phase (``warmup``, ``train_epoch``, ``validate``, ``calibrate``, ``sweep``), summed
    over their calls."""
    out: dict[str, float] = {}
    for p in trace["phases"]:
        out[p["name"]] = out.get(p["name"], 0.0) + p["seconds"]
    return out


def wall_split(trace: dict[str, Any], wall: float) -> dict[str, Any]:
    """Where ``wall`` seconds (the whole ``launch()``) went: training steps (their data wait apart), the
    traced phases outside steps, and the rest (Ray Train start, data and model build, checkpoints);
    ``outside_steps_share`` = 1 - steps / wall."""
    steps = sum(s["seconds"] for s in trace["steps"])
    wait = sum(min(s["wait"], s["seconds"]) for s in trace["steps"])
    phases = phase_seconds(trace)
    in_epochs = phases.get("train_epoch", 0.0) - steps
    out = {"wall_s": wall, "steps_s": steps, "data_wait_in_steps_s": wait, "epoch_overhead_s": in_epochs}
    for name in ("warmup", "validate", "calibrate", "sweep"):
        out[f"{name}_s"] = phases.get(name, 0.0)
    out["other_s"] = wall - sum(phases.values())
    out["outside_steps_share"] = 1.0 - steps / wall if wall > 0 else None
    out["data_wait_share_of_steps"] = wait / steps if steps > 0 else None
    return out
