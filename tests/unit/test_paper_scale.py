"""P10's arithmetic: hours outside training steps at paper scale, from the per-image costs bench.json holds."""

from __future__ import annotations

import pytest

from benchmarks.paper_scale import Measured, Node, hours_outside_training, markdown


def test_rows_are_the_stated_formulas():
    m = Measured(val_core_s=0.005, sweep_core_s=0.1, calib_core_s=0.02)
    val, sweep, calib = hours_outside_training(Node(), m)
    assert val.before_h == pytest.approx(90 * 50_000 / 137 / 3600)  # 9.12 h: rank 0, one thread
    assert val.after_h == pytest.approx(90 * 50_000 * 0.005 / 96 / 3600)  # 96 loader cores
    assert sweep.before_h == pytest.approx(50_000 * 0.097 / 3600)
    assert sweep.after_h == pytest.approx(50_000 * 0.1 / 96 / 3600)
    assert calib.before_h == calib.after_h == pytest.approx(51_200 * 0.02 / 3600)
    assert "| total | 10.76 | 0.36 |" in markdown([val, sweep, calib])


def test_gpu_forward_bounds_the_time_when_loaders_are_faster():
    fast = Measured(val_core_s=1e-6, sweep_core_s=1e-6, calib_core_s=1e-6)
    val, sweep, _ = hours_outside_training(Node(eval_images_per_s_per_gpu=1000.0), fast)
    assert val.after_h == pytest.approx(90 * 50_000 / (8 * 1000) / 3600)  # the 8 GPUs' forward, not the loader
    assert sweep.after_h == pytest.approx(2 * 50_000 / 1000 * 819 / 49 / 8 / 3600)  # raw + calibrated, 13 sizes


def test_reads_the_medians_of_bench_json_and_names_missing_figures():
    figures = {"P7": {"detail": {"cores": 2, "loader_images_per_s": [300.0, 400.0, 500.0]}},
               "P8": {"detail": {"images": 80, "one_pass_s": [2.0, 2.4, 9.0]}},
               "P5 data": {"detail": {"jpegs": 256, "one_pass_s": [6.0, 6.4, 7.0]}}}
    assert Measured.from_bench(figures) == Measured(2 / 400, 2.4 / 80, 6.4 / 256)
    with pytest.raises(SystemExit, match=r"missing \['P8'\].*benchmarks.run p5 p7 p8"):
        Measured.from_bench({k: v for k, v in figures.items() if k != "P8"})
