"""`make bench` runs end to end on tiny budgets: every figure is the ratio its own recorded sides give, and
the run writes its JSON and PNG. No timing is asserted (timings live in the committed bench.json)."""

from __future__ import annotations

import json
import statistics

import pytest

from benchmarks import bench_calibration, bench_flops, bench_loader, bench_smoothing, bench_step_time, common
from benchmarks import run as bench_run
from benchmarks.figure import Budget, Figure, table

TINY = Budget(repeats=2, window=3, warmup=1)


@pytest.fixture(autouse=True)
def _data(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXSIZE_RAY_DATA_DIR", str(tmp_path / "data"))


def test_figure_median_target_and_table():
    f = Figure("P2", "spread", [1.2, 1.1, 1.3, 1.0, 1.12], target=1.15, at_least=False)
    assert f.median == 1.12 and f.holds is True
    assert Figure("P1", "r", [0.9, 0.94, 0.99], target=0.95).holds is False  # median 0.94 < 0.95
    assert Figure("P6", "u", [0.1]).holds is None
    text = table([f])
    assert "P2" in text and "<= 1.15" in text and "holds" in text and "1.000..1.300" in text


def test_step_time_spread_is_max_over_min_of_medians():
    ratio, medians = bench_step_time.spread({16: [1.0, 3.0, 2.0], 24: [4.0, 4.0], 32: [2.5]})
    assert medians == {16: 2.0, 24: 4.0, 32: 2.5} and ratio == 2.0


def test_p2_figures_come_from_the_loops_step_times():
    f = bench_step_time.measure("cifar_s28_bplus", TINY, train_size=256)
    assert len(f.values) == 2 and all(v >= 1 for v in f.values)
    for ratio, medians in zip(f.values, f.detail["median_step_s_by_size"], strict=True):
        assert ratio == pytest.approx(max(medians.values()) / min(medians.values()))
    sizes = [row[0] for row in f.detail["table_S_B_D_p"]]
    assert sorted(sizes) == [16, 24, 32, 40]


def test_p3_ratio_is_loader_over_training_at_the_smallest_size():
    f = bench_loader.measure(TINY, train_size=256)
    d = f.detail
    assert d["size"] == 16 and d["batch"] == 256  # the B+ preset's batch at 16 px: 64 * (32/16)^2
    assert f.values == [a / b for a, b in zip(d["loader_images_per_s"], d["training_images_per_s"], strict=True)]


def test_p4_fraction_is_smoothing_time_over_step_time():
    f = bench_smoothing.measure(TINY, batch=4, size=16)
    assert len(f.values) == 2 and all(0 < v < 1 for v in f.values)
    assert f.target == 0.01 and f.at_least is False


def test_p5_ratio_is_calibration_over_epoch():
    f = bench_calibration.measure(TINY, train_size=256, sets=("train.calibrate_batches=1",))
    d = f.detail
    assert f.values == [c / e for c, e in zip(d["calibration_s"], d["epoch_s"], strict=True)]
    assert len(d["sizes"]) == 13 and d["calibration_batches"] == 1 and d["calibration_batch"] == 64
    # without overrides P5 times the product's calibration (200 batches), not the quiet benches' 1 batch
    from mixsize_ray.config import load_config

    cfg = common.preset_config(bench_calibration.PRESET, bench_calibration.product_protocol())
    assert cfg.train.calibrate_batches == load_config(None, []).train.calibrate_batches == 200


def test_p5_data_ratio_is_per_size_passes_over_one_pass():
    f = bench_calibration.measure_data_passes(Budget(repeats=1), images=32)
    d = f.detail
    assert f.values == [a / b for a, b in zip(d["per_size_passes_s"], d["one_pass_s"], strict=True)]
    assert d["sizes"] == [32 + 32 * m for m in range(13)]  # 224 + 32m, m = -6..6


def test_p6_flops_per_step_match_the_flop_counter():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from mixsize_ray.models import build_model

    net = build_model("resnet20", 10)
    x = torch.randn(6, 3, 16, 16)
    with FlopCounterMode(display=False) as c:
        torch.nn.functional.cross_entropy(net(x), torch.zeros(6, dtype=torch.long)).backward()
    assert bench_flops.step_flops(net, 16, views=6, duplicates=1, classes=10) == c.get_total_flops()
    f = bench_flops.measure(TINY, matmul_n=64, train_size=256)
    d = f.detail
    assert f.values == [a / p for a, p in zip(d["train_flop_per_s"], d["matmul_flop_per_s"], strict=True)]


def test_run_writes_json_and_png(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    monkeypatch.setattr(bench_run, "RESULTS", tmp_path)
    monkeypatch.setitem(bench_run.BENCHES, "p4", lambda b: [bench_smoothing.measure(b, batch=4, size=16)])
    figures = bench_run.run(["p4"], TINY)
    saved = json.loads((tmp_path / "bench-quick.json").read_text())
    p4 = saved["figures"]["P4"]
    assert p4["median"] == statistics.median(p4["values"]) == figures[0].median
    assert saved["runs"][0]["budget"] == {"repeats": 2, "window": 3, "warmup": 1}
    assert saved["machine"]["cpu_count"] >= 1 and (tmp_path / "bench-quick.png").stat().st_size > 1000
    # --into: re-measured figures replace theirs, the others are kept, both runs are listed
    (tmp_path / "bench.json").write_text(json.dumps({"figures": {
        "P4": {**p4, "values": [9.0]}, "P9": Figure("P9", "kept", [1.5], target=2.0).to_dict()}, "runs": [{"command": "old"}]}))
    bench_run.run(["p4"], TINY, into="bench")
    merged = json.loads((tmp_path / "bench.json").read_text())
    assert sorted(merged["figures"]) == ["P4", "P9"] and merged["figures"]["P9"]["values"] == [1.5]
    assert merged["figures"]["P4"]["values"] != [9.0] and [r["command"] for r in merged["runs"]][0] == "old"


def test_unknown_bench_name_exit_2(capsys):
    assert bench_run.main(["nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_p1_ratio_is_ray_over_bare(tmp_path):
    from benchmarks import bench_throughput

    f = bench_throughput.measure(Budget(repeats=1, window=2, warmup=1), train_size=128)
    d = f.detail
    assert f.values == [r / b for b, r in zip(d["bare_images_per_s"], d["ray_images_per_s"], strict=True)]
    assert f.values[0] > 0 and f.target == 0.95


def test_calibration_tradeoff_rows_are_deltas_from_the_first_protocol(tmp_path, monkeypatch):
    from benchmarks import calibration_tradeoff
    from mixsize_ray.config import load_config
    from mixsize_ray.train.checkpoint import save_checkpoint
    from mixsize_ray.train.loop import TrainingLoop

    monkeypatch.setattr(common, "RESULTS", tmp_path)
    cfg = load_config(None, ["data.train_size=64", "data.test_size=16", "data.num_workers=0", "train.epochs=1",
                             "regime.base_batch=8", "train.max_steps_per_epoch=2", "tracking.enabled=false"])
    loop = TrainingLoop(cfg, log=lambda _m: None)
    loop.train_epoch()
    save_checkpoint(tmp_path / "ckpt", loop.state_dict(), config_yaml=cfg.to_yaml())
    monkeypatch.setattr(calibration_tradeoff, "PROTOCOLS", [("ref", None, 2, 0), ("small", 4, 1, 1)])
    assert calibration_tradeoff.main([str(tmp_path / "ckpt"), "--test-images", "16"]) == 0
    rows = json.loads((tmp_path / "calibration_tradeoff.json").read_text())["rows"]
    assert rows[0]["max_abs_delta"] == 0 and rows[0]["images_per_size"] == 16  # 2 batches of B0 = 8
    deltas = [abs(rows[1]["top1"][s] - rows[0]["top1"][s]) for s in rows[0]["top1"]]
    assert rows[1]["mean_abs_delta"] == pytest.approx(sum(deltas) / 13) and rows[1]["images_per_size"] == 4


def test_p0_values_are_each_cases_median_refusal_time():
    from benchmarks import bench_refusals

    f = bench_refusals.measure(Budget(repeats=2, window=1, warmup=0), cases=["config-missing", "config-is-a-folder"])
    d = f.detail
    assert d["cases"] == 2 and d["repeats"] == 2 and f.target == 5.0 and f.at_least is False
    assert f.values == list(d["per_case_median_s"].values()) and all(v > 0 for v in f.values)
    assert d["slowest_median_s"] == max(f.values)


def test_p0_refuses_to_time_a_case_that_is_accepted(monkeypatch):
    from benchmarks import bench_refusals

    monkeypatch.setitem(bench_refusals.CASES, "accepted", {"args": ["--help"]})  # exits 0: not a refusal
    with pytest.raises(RuntimeError, match="case accepted was not refused"):
        bench_refusals.measure(Budget(repeats=1, window=1, warmup=0), cases=["accepted"])


def test_p9_ratio_per_size_is_reduced_over_full_images_per_s():
    from benchmarks import bench_jpeg_decode
    from benchmarks.jpeg_imagefolder import JpegSpec

    tiny = {"t": JpegSpec(classes=1, train_per_class=32, val_per_class=0, width=300, height=280)}
    figures = bench_jpeg_decode.measure(Budget(repeats=2), shapes=tiny)
    assert [f.key for f in figures] == ["P9 128", "P9 160", "P9 224"]
    for f in figures:
        d = f.detail
        assert f.values == [a / b for a, b in zip(d["reduced_images_per_s"], d["full_images_per_s"], strict=True)]
        assert d["full_images_per_s"] == d["t_full_images_per_s"] and f.target is None


def test_p7_is_the_floor_time_over_the_validation_loader_time():
    from benchmarks import bench_eval
    from benchmarks.jpeg_imagefolder import JpegSpec

    f = bench_eval.measure_p7(Budget(repeats=2), spec=JpegSpec(classes=2, train_per_class=0, val_per_class=8))
    d = f.detail
    assert f.key == "P7" and f.target == 0.8 and f.at_least and d["images"] == 16
    assert f.values == pytest.approx([a / b for a, b in zip(d["loader_images_per_s"], d["floor_images_per_s"],
                                                            strict=True)])
    assert len(d["cpu_normalised_images_per_s"]) == 2  # the device side on this CPU, recorded beside


def test_p8_is_one_pass_over_the_per_size_passes():
    from benchmarks import bench_eval
    from benchmarks.jpeg_imagefolder import JpegSpec

    f = bench_eval.measure_p8(Budget(repeats=2), spec=JpegSpec(classes=1, train_per_class=0, val_per_class=3))
    d = f.detail
    assert f.key == "P8" and f.target == 0.75 and not f.at_least and len(d["sizes"]) == 13
    assert f.values == [b / a for a, b in zip(d["per_size_passes_s"], d["one_pass_s"], strict=True)]
