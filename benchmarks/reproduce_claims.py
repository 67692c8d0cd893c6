"""The paper's four claims computed from per-regime, per-seed training records (pure Python, no I/O).

A record is what one real ``mixsize-ray train`` run left in MLflow::

    {"val_top1": [(global_step, top1_at_S0), ...],          # per epoch, uncalibrated, at S0
     "sweep": {size: {"top1": float, "top1_calibrated": float}}, "final_step": int}

Claims (mean, std over seeds; ``holds`` is the paper's direction):

* ``a_bplus_steps_ratio``: steps B+ needs to reach fixed's final top-1 at S0 (first epoch whose val top-1, or
  the final calibrated top-1, reaches it) over fixed's total steps. Holds when every seed reaches it and the
  mean ratio is < 1 (paper Table 1 / Figure 2: B+ about 2.7x fewer steps on ImageNet).
* ``b_dplus_minus_fixed_top1``: D+ minus fixed, top-1 at S0 (mixed calibrated, fixed as trained; the paper
  reports fixed models uncalibrated, section 5.3), at equal steps and equal per-step cost. Holds when > 0.
* ``c_mixed_at_5_7_minus_fixed_at_s0``: the better mixed regime's calibrated top-1 at the size nearest
  5/7*S0 (160 for 224; 24 for 32 here) minus fixed at S0. Holds when >= 0 ("76.43 % at only 160", 5.3).
* ``d_calibration_gain_mixed_minus_fixed``: mean over the sweep of (calibrated - uncalibrated) top-1, mixed
  (mean of B+ and D+) minus fixed. Holds when > 0 ("little to no effect on models trained using a fixed-size
  input, it does improve our mixed-size models considerably", section 4.3).

Example:
    >>> rec = {"val_top1": [(10, 0.5), (20, 0.9)], "final_step": 20,
    ...        "sweep": {24: {"top1": 0.5, "top1_calibrated": 0.6}, 32: {"top1": 0.9, "top1_calibrated": 0.9}}}
    >>> steps_to_reach(rec, 0.8)
    20
"""

from __future__ import annotations

import statistics
from typing import Any

Record = dict[str, Any]


def steps_to_reach(rec: Record, target: float, s0: int = 32) -> int | None:
    """First global step whose per-epoch top-1 at S0 reaches ``target``; else the final step if the final
    calibrated top-1 at S0 reaches it; else None."""
    for step, top1 in rec["val_top1"]:
        if top1 >= target:
            return int(step)
    cal = rec["sweep"].get(s0, {}).get("top1_calibrated")
    if cal is not None and cal >= target:
        return int(rec["final_step"])
    return None


def nearest_size(sizes: list[int], target: float) -> int:
    return min(sizes, key=lambda s: (abs(s - target), s))


def top1_at(rec: Record, size: int, calibrated: bool) -> float:
    row = rec["sweep"][size]
    if calibrated and row.get("top1_calibrated") is not None:
        return float(row["top1_calibrated"])
    return float(row["top1"])


def calibration_gain(rec: Record) -> float:
    gains = [r["top1_calibrated"] - r["top1"] for r in rec["sweep"].values() if r.get("top1_calibrated") is not None]
    return sum(gains) / len(gains)


def _summary(values: list[float | None], holds_if) -> dict[str, Any]:
    got = [v for v in values if v is not None]
    mean = statistics.fmean(got) if got else None
    std = statistics.stdev(got) if len(got) > 1 else 0.0 if got else None
    ok = bool(got) and len(got) == len(values) and holds_if(mean)
    return {"per_seed": values, "mean": mean, "std": std, "holds": ok}


def claims(runs: dict[str, list[Record]], s0: int = 32) -> dict[str, dict[str, Any]]:
    """``runs``: ``{"fixed": [rec per seed], "B+": [...], "D+": [...]}`` (same seed order)."""
    fixed, bplus, dplus = runs["fixed"], runs["B+"], runs["D+"]
    a, b, c, d = [], [], [], []
    sizes = sorted(fixed[0]["sweep"])
    small = nearest_size(sizes, 5 / 7 * s0)
    for f, bp, dp in zip(fixed, bplus, dplus, strict=True):
        target = top1_at(f, s0, calibrated=False)
        reached = steps_to_reach(bp, target, s0)
        a.append(None if reached is None else reached / f["final_step"])
        b.append(top1_at(dp, s0, calibrated=True) - target)
        c.append(max(top1_at(bp, small, True), top1_at(dp, small, True)) - target)
        d.append((calibration_gain(bp) + calibration_gain(dp)) / 2 - calibration_gain(f))
    return {
        "a_bplus_steps_ratio": {**_summary(a, lambda m: m < 1.0), "size_s0": s0},
        "b_dplus_minus_fixed_top1": {**_summary(b, lambda m: m > 0.0), "size_s0": s0},
        "c_mixed_at_5_7_minus_fixed_at_s0": {**_summary(c, lambda m: m >= 0.0), "size_small": small, "size_s0": s0},
        "d_calibration_gain_mixed_minus_fixed": _summary(d, lambda m: m > 0.0),
    }
