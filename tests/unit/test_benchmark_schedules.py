"""benchmarks/schedules.py without training: both arms get the same shrunk space and compute, the fixed control
is left out, PBT is switched on only in its arm, and the verdict reads the numbers honestly."""

from __future__ import annotations

import argparse

from benchmarks.schedules import arm_space, verdict
from mixsize_ray.tune.spec import load_space, parse_space


def test_arms_share_size_and_differ_only_in_the_scheduler():
    a = argparse.Namespace(epochs=4, steps=150, population=2, quick=False)
    raw = load_space("search_spaces/quickstart.yaml").raw
    static, pbt = parse_space(arm_space(raw, "static", 1, a)), parse_space(arm_space(raw, "pbt", 1, a))
    for s in (static, pbt):
        assert s.fixed.train.epochs == 4 and s.fixed.train.max_steps_per_epoch == 150 and s.fixed.train.seed == 1
        assert s.search.num_samples == 2 and "fixed" not in s.modes
    assert static.search.pbt is None and pbt.search.pbt.perturbation_interval == 1
    assert static.fixed.to_dict() == {**pbt.fixed.to_dict()}


def test_verdict_reports_spread():
    v = verdict([0.60, 0.62, 0.58], [0.61, 0.59, 0.63])
    assert v["winner"] == "pbt" and not v["beyond_spread"] and abs(v["pbt_minus_static"] - 0.01) < 1e-12
    assert verdict([0.7, 0.71], [0.5, 0.52])["winner"] == "static"
