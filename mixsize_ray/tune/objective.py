"""Search objectives (read from a trial's final metrics) and constraints (read from its solved regime).

Objectives (``kind``), all on the end-of-run size sweep unless said otherwise:

* ``target``: top-1 at the target size (default S0), BN-calibrated by default; maximised.
* ``band``: mean top-1 over the evaluated sizes in ``[low, high]``; maximised.
* ``size``: top-1 at one (typically small) size; maximised.
* ``steps``: training steps the run took; minimised.

Constraints follow Optuna's convention (a value <= 0 is feasible; recorded with ``Trial.set_constraint``,
which every Optuna 5 sampler reads) and are known before training, so an infeasible trial is ended at
once with every objective's worst value:

* ``mean_size``: ``{low, high}`` on the step-weighted mean size sum_i share_i * S_i;
* ``compute_ratio``: ``{max}`` on total training pixels relative to the fixed (S0, B0, D0) baseline over
  the same epochs (B+ takes fewer, bigger steps and so uses less).

The objectives read the end-of-run curve by the names :mod:`mixsize_ray.core.sweep_metrics` gives it (the
worker writes it through the same functions).

Example:
    >>> from mixsize_ray.core.sweep_metrics import sweep_report
    >>> final = sweep_report({"sizes": [{"size": 16, "top1": 0.5, "top1_calibrated": 0.6},
    ...                                  {"size": 32, "top1": 0.7, "top1_calibrated": 0.75}]})
    >>> o = Objective("target", sizes=(32,))
    >>> o.name, o.key, o.mode, o.value(final)
    ('top1_cal_32', 'obj_top1_cal_32', 'max', 0.75)
    >>> Objective("band", (16, 32), calibrated=False, low=16, high=32).value(final)
    0.6
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mixsize_ray.core.sweep_metrics import sweep_metric

KINDS = ("target", "band", "size", "steps")
OBJECTIVE_PREFIX = "obj_"  # an objective's key in a Tune result: obj_<name>


@dataclass(frozen=True)
class Objective:
    """One objective. ``sizes``: the evaluated sizes it reads (one for target/size, >= 1 for band)."""

    kind: str
    sizes: tuple[int, ...] = ()
    calibrated: bool = True
    low: int | None = None
    high: int | None = None

    @property
    def name(self) -> str:
        """Metric-safe name, also the Tune result key (prefixed ``obj_``) and MLflow metric name."""
        cal = "_cal" if self.calibrated else ""
        if self.kind == "steps":
            return "steps"
        if self.kind == "band":
            return f"top1{cal}_band_{self.low}_{self.high}"
        return f"top1{cal}_{self.sizes[0]}"

    @property
    def key(self) -> str:
        return f"{OBJECTIVE_PREFIX}{self.name}"

    @property
    def mode(self) -> str:
        return "min" if self.kind == "steps" else "max"

    @property
    def worst(self) -> float:
        """The score an infeasible trial gets: 0 top-1, or infinitely many steps."""
        return math.inf if self.kind == "steps" else 0.0

    def metric_keys(self) -> list[str]:
        """Keys of the worker's final report this objective reads."""
        if self.kind == "steps":
            return ["step"]
        return [sweep_metric(s, self.calibrated) for s in self.sizes]

    def provisional(self, metrics: dict[str, Any]) -> float:
        """Before the final epoch: the per-epoch ``val_top1`` (top-1 at the eval size) or the steps so far.
        Tune checks every report holds the search metric; Optuna is only ever told final values."""
        v = metrics.get("step" if self.kind == "steps" else "val_top1")
        return self.worst if v is None else float(v)

    def value(self, metrics: dict[str, Any]) -> float | None:
        """The objective from a final report; None when a key is missing."""
        vals = [metrics.get(k) for k in self.metric_keys()]
        if any(v is None for v in vals):
            return None
        return float(sum(vals) / len(vals))


@dataclass(frozen=True)
class Constraint:
    """``fact`` (``mean_size`` or ``compute_ratio``) compared with ``bound``; value <= 0 is feasible."""

    fact: str
    bound: float
    upper: bool

    @property
    def name(self) -> str:
        return f"{self.fact}{'<=' if self.upper else '>='}{self.bound:g}"

    def value(self, facts: dict[str, float]) -> float:
        x = facts[self.fact]
        return x - self.bound if self.upper else self.bound - x


def regime_facts(cfg: Any, table: Any) -> dict[str, float]:
    """Mean size, expected steps and compute ratio of a trial config and its solved :class:`RegimeTable`."""
    cap = cfg.train.max_steps_per_epoch or math.inf
    epochs = cfg.train.epochs
    steps = min(cap, math.ceil(table.steps_per_epoch)) * epochs
    base_steps = min(cap, math.ceil(table.baseline_steps_per_epoch)) * epochs
    mean_cost = sum(e.step_share * e.cost for e in table.entries)
    return {
        "mean_size": float(table.mean_size),
        "expected_steps": float(steps),
        "compute_ratio": float(steps * mean_cost / (base_steps * table.target_cost)),
        "max_budget_error": max(abs(e.budget_ratio - 1) for e in table.entries),
    }


def infeasible_reason(constraints: list[Constraint], values: list[float], facts: dict[str, float]) -> str | None:
    """A one-line reason naming every violated constraint, or None when all hold."""
    bad = [f"{c.fact} {facts[c.fact]:.4g} violates {c.name}" for c, v in zip(constraints, values, strict=True)
           if v > 0]
    return "; ".join(bad) or None
