"""`make bench` entry points run (tiny sizes) and write their JSON results; no timing is asserted."""

from __future__ import annotations

import json

from benchmarks import common
from benchmarks import run as bench_run


def test_smoothing_bench_smoke(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    from benchmarks import bench_smoothing

    doc = bench_smoothing.main(steps=2, batch=4, size=16)
    saved = json.loads((tmp_path / "smoothing.json").read_text())
    assert saved["overhead_fraction"] == doc["overhead_fraction"]
    assert doc["step_s_with"] > 0 and doc["step_s_without"] > 0 and 0 < doc["smoothing_fraction_of_step"] < 1
    assert saved["machine"]["cpu_count"] >= 1


def test_unknown_bench_name_exit_2(capsys):
    assert bench_run.main(["nope"]) == 2
    assert "nope" in capsys.readouterr().err
