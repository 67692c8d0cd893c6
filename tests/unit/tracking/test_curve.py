"""The accuracy-vs-size curve as MLflow metrics (step = size) and the per-epoch metric filter."""

from __future__ import annotations

import math

import pytest

from mixsize_ray.tracking.curve import curve_metrics, epoch_metrics


def _doc(calibrated=True):
    rows = []
    for s, acc in ((16, 0.5), (32, 0.9), (48, 0.7)):
        g = 0.01 * (s / 16) ** 2
        rows.append({"size": s, "top1": acc, "top5": 1.0, "top1_calibrated": acc + 0.05 if calibrated else None,
                     "top5_calibrated": 1.0 if calibrated else None, "gflops": g, "top1_per_gflop": acc / g})
    return {"sizes": list(reversed(rows)), "mode": "B+"}


def test_curve_steps_are_the_sizes():
    got = curve_metrics(_doc(), epoch=4)
    series = {}
    for k, v, s in got:
        series.setdefault(k, []).append((s, v))
    assert [s for s, _ in series["top1_vs_size"]] == [16, 32, 48]
    assert [v for _, v in series["top1_calibrated_vs_size"]] == pytest.approx([0.55, 0.95, 0.75])
    assert [s for s, _ in series["gflops_vs_size"]] == [16, 32, 48]
    cal_per_gflop = dict(series["top1_calibrated_per_gflop_vs_size"])
    assert cal_per_gflop[32] == pytest.approx(0.95 / 0.04)


def test_per_size_keys_for_sorting_the_runs_table():
    got = {k: (v, s) for k, v, s in curve_metrics(_doc(), epoch=4)}
    assert got["top1_at_32"] == (0.9, 4)
    assert got["top1_calibrated_at_16"] == (pytest.approx(0.55), 4)
    assert got["top1_per_gflop_at_48"][0] == pytest.approx(0.7 / 0.09)
    assert "gflops_at_16" in got


def test_uncalibrated_sweep_logs_no_calibrated_keys():
    keys = {k for k, _, _ in curve_metrics(_doc(calibrated=False))}
    assert "top1_vs_size" in keys and "top1_at_16" in keys
    assert not any("calibrated" in k for k in keys)


def test_epoch_metrics_keep_finite_numbers_only():
    m = {"epoch": 3, "step": 120, "loss": 1.5, "train_top1": 0.4, "val_top1": math.nan, "ranks_agree": 1,
         "sweep_top1_16": 0.3, "mlflow_run_id": "abc", "flag": True}
    assert epoch_metrics(m) == {"global_step": 120.0, "loss": 1.5, "train_top1": 0.4, "ranks_agree": 1.0}
