"""What a trial reports to Tune: provisional objectives per epoch, final objectives, worst values, reasons."""

from __future__ import annotations

import math

import pytest

from mixsize_ray.tune.objective import Objective
from mixsize_ray.tune.spec import parse_space
from mixsize_ray.tune.trainable import final_report, interim_report, worst_report

OBJS = (Objective("target", (32,)), Objective("band", (16, 24), True, 16, 24), Objective("steps"))


def test_interim_report_carries_every_search_metric():
    r = interim_report({"epoch": 0, "val_top1": 0.4, "step": 10}, OBJS)
    assert r["final"] == 0 and r["obj_top1_cal_32"] == 0.4 and r["obj_steps"] == 10
    assert r["obj_top1_cal_band_16_24"] == 0.4  # provisional: val_top1 at the eval size
    r = interim_report({"epoch": 0, "step": 10}, OBJS)  # no validation this epoch
    assert r["obj_top1_cal_32"] == 0.0


def test_final_report_reads_the_sweep():
    m = {"epoch": 1, "step": 40, "sweep_top1_calibrated_32": 0.8, "sweep_top1_calibrated_16": 0.5,
         "sweep_top1_calibrated_24": 0.7}
    r = final_report(m, OBJS)
    assert r["final"] == 1 and r["obj_top1_cal_32"] == 0.8 and r["obj_steps"] == 40
    assert r["obj_top1_cal_band_16_24"] == pytest.approx(0.6) and "objective_missing" not in r
    r = final_report({"epoch": 1, "step": 40}, OBJS)
    assert r["obj_top1_cal_32"] == 0.0 and r["objective_missing"] == "top1_cal_32,top1_cal_band_16_24"


def test_worst_report_includes_the_asha_metric(raw_space):
    raw_space["search"]["asha"] = {"grace_period": 1}
    raw_space["objectives"] = [{"kind": "target"}, {"kind": "steps"}]
    r = worst_report(parse_space(raw_space), 3, fail_reason="diverged: x")
    assert r == {"obj_top1_cal_32": 0.0, "obj_steps": math.inf, "val_top1": 0.0, "trial_number": 3,
                 "fail_reason": "diverged: x"}
