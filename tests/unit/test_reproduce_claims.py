"""The four claims of `make reproduce`, computed by hand on made-up records."""

from __future__ import annotations

import pytest

from benchmarks.reproduce_claims import calibration_gain, claims, steps_to_reach


def rec(val, final_step, sweep):
    return {"val_top1": val, "final_step": final_step,
            "sweep": {s: {"top1": a, "top1_calibrated": b} for s, (a, b) in sweep.items()}}


FIXED = rec([(100, 0.5), (200, 0.9)], 200, {24: (0.2, 0.25), 32: (0.9, 0.9)})
BPLUS = rec([(50, 0.7), (100, 0.92)], 100, {24: (0.7, 0.85), 32: (0.85, 0.93)})
DPLUS = rec([(100, 0.6), (200, 0.88)], 200, {24: (0.75, 0.88), 32: (0.87, 0.95)})


def test_each_claim_by_hand():
    c = claims({"fixed": [FIXED, FIXED], "B+": [BPLUS, BPLUS], "D+": [DPLUS, DPLUS]})
    a = c["a_bplus_steps_ratio"]
    assert a["per_seed"] == [0.5, 0.5] and a["mean"] == 0.5 and a["std"] == 0.0 and a["holds"]  # 100 / 200
    assert c["b_dplus_minus_fixed_top1"]["mean"] == pytest.approx(0.95 - 0.9) and c["b_dplus_minus_fixed_top1"]["holds"]
    cc = c["c_mixed_at_5_7_minus_fixed_at_s0"]  # nearest 5/7*32 = 22.9 is 24; best mixed there 0.88
    assert cc["size_small"] == 24 and cc["mean"] == pytest.approx(0.88 - 0.9) and not cc["holds"]
    # gains: fixed (0.05 + 0) / 2 = 0.025; B+ (0.15 + 0.08) / 2 = 0.115; D+ (0.13 + 0.08) / 2 = 0.105
    d = c["d_calibration_gain_mixed_minus_fixed"]
    assert d["mean"] == pytest.approx((0.115 + 0.105) / 2 - 0.025) and d["holds"]


def test_unreached_target_fails_claim_a():
    slow = rec([(50, 0.3), (100, 0.6)], 100, {24: (0.5, 0.5), 32: (0.6, 0.85)})
    assert steps_to_reach(slow, 0.9) is None
    assert steps_to_reach(slow, 0.8) == 100  # the final calibrated top-1 reaches it
    c = claims({"fixed": [FIXED, FIXED], "B+": [BPLUS, slow], "D+": [DPLUS, DPLUS]})
    assert c["a_bplus_steps_ratio"]["per_seed"] == [0.5, None] and not c["a_bplus_steps_ratio"]["holds"]
    assert calibration_gain(slow) == pytest.approx(0.125)
