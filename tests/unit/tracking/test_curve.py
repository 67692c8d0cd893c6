"""The accuracy-vs-size curve as MLflow metrics (step = size), in sections, and the per-epoch metric names."""

from __future__ import annotations

import math

import pytest

from mixsize_ray.tracking import keys
from mixsize_ray.tracking.curve import curve_metrics, epoch_metrics


def _doc(calibrated=True):
    rows = []
    for s, acc in ((16, 0.5), (32, 0.9), (48, 0.7)):
        g = 0.01 * (s / 16) ** 2
        cal = acc + 0.05 if calibrated else None
        rows.append({"size": s, "top1": acc, "top5": 1.0, "top1_calibrated": cal,
                     "top5_calibrated": 1.0 if calibrated else None, "gflops": g,
                     "top1_per_gflop": (cal if calibrated else acc) / g})
    return {"sizes": list(reversed(rows)), "mode": "B+"}


def test_curve_steps_are_the_sizes():
    got = curve_metrics(_doc(), epoch=4)
    series = {}
    for k, v, s in got:
        series.setdefault(k, []).append((s, v))
    assert [s for s, _ in series["accuracy_vs_size/top1"]] == [16, 32, 48]
    assert [v for _, v in series["accuracy_vs_size/top1_calibrated"]] == pytest.approx([0.55, 0.95, 0.75])
    assert [s for s, _ in series["flops_vs_size/gflops"]] == [16, 32, 48]
    assert dict(series["flops_vs_size/top1_per_gflop"])[32] == pytest.approx(0.95 / 0.04)


def test_no_number_is_logged_under_two_curve_names():
    """The calibrated top-1 per GFLOP IS the sweep's top1_per_gflop when calibrated: logged once."""
    got = curve_metrics(_doc(), epoch=4)
    curve = [(k, s) for k, _, s in got if not k.startswith("at_size/")]
    assert len(curve) == len(set(curve)) == 6 * 3
    assert not any("calibrated_per_gflop" in k for k, _, _ in got)


def test_sections_put_the_curves_first():
    """MLflow's chart view lists sections by name: the curve's section sorts before every other section."""
    got = curve_metrics(_doc(), epoch=4)
    epoch = epoch_metrics({"epoch": 0, "loss": 1.0, "step": 3, "lr": 0.1, "val_top1": 0.5, "step_time_16": 0.2,
                           "images_per_s": 10.0, "grad_norm": 1.0, "realised_budget": 1.0})
    sections = {k.split("/")[0] for k, _, _ in got} | {k.split("/")[0] for k in epoch}
    assert min(sections) == keys.CURVE_SECTION == "accuracy_vs_size"
    assert sections == {"accuracy_vs_size", "flops_vs_size", "at_size", "train", "val", "step_time"}


def test_per_size_keys_for_sorting_the_runs_table():
    got = {k: (v, s) for k, v, s in curve_metrics(_doc(), epoch=4)}
    assert got["at_size/top1_32"] == (0.9, 4)
    assert got["at_size/top1_calibrated_16"] == (pytest.approx(0.55), 4)
    assert sorted(k for k in got if k.startswith("at_size/")) == [
        "at_size/top1_16", "at_size/top1_32", "at_size/top1_48",
        "at_size/top1_calibrated_16", "at_size/top1_calibrated_32", "at_size/top1_calibrated_48"]


def test_uncalibrated_sweep_logs_no_calibrated_keys():
    names = {k for k, _, _ in curve_metrics(_doc(calibrated=False))}
    assert "accuracy_vs_size/top1" in names and "at_size/top1_16" in names
    assert not any("calibrated" in k for k in names)


def test_epoch_metrics_keep_finite_numbers_only():
    m = {"epoch": 3, "step": 120, "loss": 1.5, "train_top1": 0.4, "val_top1": math.nan, "ranks_agree": 1,
         "sweep_top1_16": 0.3, "mlflow_run_id": "abc", "flag": True, "step_time_24": 0.25}
    assert epoch_metrics(m) == {"train/global_step": 120.0, "train/loss": 1.5, "train/top1": 0.4,
                                "train/ranks_agree": 1.0, "step_time/24": 0.25}


def test_step_time_keys_read_back():
    assert keys.size_of_step_time(keys.epoch_key("step_time_160")) == 160
    assert keys.size_of_step_time("train/loss") is None and keys.size_of_step_time("step_time/x") is None
