"""`make gpu-check` (benchmarks/gpu_check.py) in smoke mode: the product's own path (``launch()`` -> Ray Train
-> ``TrainingLoop``) on ImageNet-shaped JPEGs, tiny, with its numbers checked against the solver, the step
trace the worker wrote and FlopCounterMode; bad flags are one line, exit 2, before anything starts."""

from __future__ import annotations

import doctest
import json
import math
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import gpu_check, gpu_peaks, step_stats
from mixsize_ray.config import load_config
from mixsize_ray.core.loss import batch_augmentation_loss
from mixsize_ray.core.regime import regime_from_config
from mixsize_ray.models import build_model
from mixsize_ray.train.step_trace import PHASES

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.json"
    assert gpu_check.main(["--smoke", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def _table(name: str, smoke: dict):
    sets = [f"regime.base_batch={smoke['base_batch']}", "ray.num_workers=1"]
    cfg = load_config(ROOT / gpu_check.PRESETS[name], sets)
    return regime_from_config(cfg, world_size=1, num_images=smoke["data"]["train_images"]).solve()


def test_smoke_runs_the_product_launch_ray_train_and_the_training_loop(smoke):
    assert smoke["mode"] == "smoke" and smoke["benchmark"] == "gpu_check"
    for name in ("dplus", "fixed"):
        r = smoke["regimes"][name]
        assert r["preset"] == gpu_check.PRESETS[name]
        assert r["launch"]["entry"] == "mixsize_ray.train.launch.launch" and r["launch"]["trained"] is True
        assert Path(r["launch"]["checkpoint"]).name.startswith("checkpoint")
        assert r["ran"]["loop"] == "mixsize_ray.train.loop.TrainingLoop"  # the worker's own loop, traced
        assert r["ran"]["backend"] == "gloo" and r["ran"]["world_size"] == 1
        assert r["phases_traced"] == sorted(PHASES)  # warm-up, epochs, validation, calibration, sweep
        assert r["metrics"]["epoch"] == gpu_check.EPOCHS - 1 and 0 <= r["metrics"]["val_top1"] <= 1
        assert "train.step_trace=true" in r["overrides"] and "ray.use_gpu=false" in r["overrides"]
        assert r["eval"]["sweep_sizes"] == [96, 128, 224, 256]


def test_every_size_of_the_solved_table_trained_with_its_trace_numbers(smoke):
    for name in ("dplus", "fixed"):
        want = [(e.size, e.batch, e.duplicates, e.step_share) for e in _table(name, smoke).entries]
        rows = smoke["regimes"][name]["sizes"]
        assert [(r["size"], r["batch"], r["duplicates"], r["step_share"]) for r in rows] == want
        assert sum(r["steps"] for r in rows) == smoke["steps"]  # every traced step is in one size's row
        for r in rows:
            assert r["steps"] >= 1 and r["median_ms"] > 0 and r["compute_median_ms"] <= r["median_ms"] + 1e-6
            assert r["rows"] == r["batch"] * r["duplicates"]
            assert r["peak_mib"] is None  # no CUDA allocator on CPU
    assert all(t["holds"] for t in smoke["targets"] if t["name"] == "sizes never trained")


def test_ratio_is_the_step_share_weighted_mean_over_the_fixed_time(smoke):
    rows = smoke["regimes"]["dplus"]["sizes"]
    assert math.isclose(sum(r["step_share"] for r in rows), 1.0)
    weighted = sum(r["step_share"] * r["median_ms"] for r in rows)
    fixed = smoke["regimes"]["fixed"]["sizes"][0]["median_ms"]
    ratio = smoke["ratio"]
    assert ratio["dplus_over_fixed"] == pytest.approx(weighted / fixed, rel=1e-9)
    assert ratio["target"] == 1.05 and ratio["holds"] == (weighted / fixed <= 1.05)
    assert (smoke["missed"] is None) == all(t["holds"] for t in smoke["targets"])


def test_flops_per_step_of_the_fixed_shape_match_flop_counter_mode(smoke):
    fixed = smoke["regimes"]["fixed"]
    row = fixed["sizes"][0]
    classes = smoke["data"]["classes"]
    model = build_model(fixed["model"], classes)
    x, y = torch.randn(row["rows"], 3, row["size"], row["size"]), torch.randint(0, classes, (row["rows"],))
    with FlopCounterMode(display=False) as counter:
        batch_augmentation_loss(model(x), y, 1).backward()
    assert row["flops_per_step"] == counter.get_total_flops() > 0
    assert row["tflops"] == pytest.approx(row["flops_per_step"] / (row["median_ms"] / 1e3) / 1e12)
    assert smoke["mfu"]["fixed"] is None and "--peak-tflops" in smoke["mfu"]["source"]  # CPU: no peak


def test_wall_time_split_adds_up(smoke):
    for name in ("dplus", "fixed"):
        w = smoke["regimes"][name]["wall"]
        parts = (w["steps_s"] + w["epoch_overhead_s"] + w["warmup_s"] + w["validate_s"] + w["calibrate_s"]
                 + w["sweep_s"] + w["other_s"])
        assert parts == pytest.approx(w["wall_s"], rel=1e-6)
        assert w["outside_steps_share"] == pytest.approx(1 - w["steps_s"] / w["wall_s"], rel=1e-6)
        e = smoke["regimes"][name]["eval"]
        assert e["validate_images_per_s"] == pytest.approx(e["images"] / e["validate_s"])


@pytest.mark.parametrize("argv", [["--base-batch", "0"], ["--steps", "many"], ["--nope"]])
def test_bad_flag_is_one_line_naming_it_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        gpu_check.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and argv[0] in err


def test_base_batch_the_solver_cannot_fit_names_the_flag_before_anything_starts(capsys, tmp_path):
    data = tmp_path / "data"
    assert gpu_check.main(["--smoke", "--base-batch", "2", "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--base-batch" in err
    assert not data.exists()  # refused before the JPEGs were written or Ray started


def test_peak_lookup_covers_the_cards_people_have():
    assert gpu_peaks.lookup_peak("NVIDIA H100 PCIe")[0] == 756.0
    assert gpu_peaks.lookup_peak("NVIDIA H100 80GB HBM3")[0] == 989.0
    assert gpu_peaks.lookup_peak("NVIDIA H200")[0] == 989.0
    assert gpu_peaks.lookup_peak("NVIDIA H200 NVL")[0] == 835.5
    assert gpu_peaks.lookup_peak("NVIDIA GH200 480GB")[0] == 989.0
    assert gpu_peaks.lookup_peak("NVIDIA A100-SXM4-80GB")[0] == 312.0
    assert gpu_peaks.lookup_peak("NVIDIA L4")[0] == 121.0
    assert gpu_peaks.lookup_peak("NVIDIA H100 NVL")[0] is None
    for module in (gpu_peaks, step_stats):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted >= 1
