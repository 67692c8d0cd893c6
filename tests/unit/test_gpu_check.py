"""`make gpu-check` (benchmarks/gpu_check.py) in smoke mode: the same code as on a GPU, tiny, with its numbers
checked against the solver, FlopCounterMode and the JSON's own per-size times; bad flags are one line, exit 2."""

from __future__ import annotations

import doctest
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import gpu_check
from mixsize_ray.config import load_config
from mixsize_ray.core.regime import regime_from_config
from mixsize_ray.models import build_model

ROOT = Path(__file__).resolve().parents[2]
SMOKE_B0 = 8  # cifar presets' B0 = 64, times the smoke default --batch-scale 0.125


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.json"
    assert gpu_check.main(["--smoke", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def _table(preset: str):
    cfg = load_config(ROOT / "search_spaces" / preset, [f"regime.base_batch={SMOKE_B0}"])
    return regime_from_config(cfg, world_size=1).solve()


def test_smoke_mode_has_every_dplus_size_with_a_positive_step_time(smoke):
    assert smoke["mode"] == "smoke" and smoke["benchmark"] == "gpu_check" and smoke["machine"]["cpu_count"] >= 1
    want = [(e.size, e.batch, e.duplicates, e.step_share) for e in _table("cifar_s28_dplus.yaml").entries]
    rows = smoke["regimes"]["dplus"]["sizes"]
    assert [(r["size"], r["batch"], r["duplicates"], r["step_share"]) for r in rows] == want
    fixed = smoke["regimes"]["fixed"]["sizes"]
    assert [(r["size"], r["batch"], r["duplicates"]) for r in fixed] == [(32, SMOKE_B0, 1)]
    for r in rows + fixed:
        assert r["median_ms"] > 0 and len(r["step_ms"]) == smoke["steps_per_size"] == 3
        assert r["median_ms"] == pytest.approx(sorted(r["step_ms"])[1], abs=1e-3)  # step_ms rounded to 1e-4 ms
        assert r["retunes"] == sum(t > 3 * r["median_ms"] for t in r["step_ms"])
    if smoke["device"] == "cpu":
        assert smoke["amp"] == "none" and all(r["peak_mib"] is None for r in rows)


def test_ratio_is_the_weighted_mean_over_the_fixed_time(smoke):
    rows = smoke["regimes"]["dplus"]["sizes"]
    assert math.isclose(sum(r["step_share"] for r in rows), 1.0)
    weighted = sum(r["step_share"] * r["median_ms"] for r in rows)
    fixed = smoke["regimes"]["fixed"]["sizes"][0]["median_ms"]
    ratio = smoke["ratio"]
    assert ratio["dplus_over_fixed"] == pytest.approx(weighted / fixed, rel=1e-9)
    assert ratio["target"] == 1.05 and ratio["holds"] == (weighted / fixed <= 1.05)


def test_flops_per_step_of_the_fixed_shape_match_flop_counter_mode(smoke):
    model = build_model("resnet20", 10)
    x, y = torch.randn(SMOKE_B0, 3, 32, 32), torch.randint(0, 10, (SMOKE_B0,))
    with gpu_check.cpu_threads(1), FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    flops = counter.get_total_flops()
    assert flops > 0
    assert smoke["regimes"]["fixed"]["model"] == "resnet20"
    assert smoke["regimes"]["fixed"]["sizes"][0]["flops_per_step"] == flops
    # the D+ entry at 32 px is the same (S, B*D) shape
    assert next(r for r in smoke["regimes"]["dplus"]["sizes"] if r["size"] == 32)["flops_per_step"] == flops
    m = smoke["mfu"]
    if smoke["device"] == "cpu":
        assert m["dplus"] is None and m["fixed"] is None and "--peak-tflops" in m["reason"]
    fixed = smoke["regimes"]["fixed"]["sizes"][0]
    assert m["achieved_tflops"]["fixed"] == pytest.approx(flops / (fixed["median_ms"] / 1e3) / 1e12)


def test_ray_section_ran_on_gloo(smoke):
    ray = smoke["ray"]
    assert "error" not in ray, ray.get("error")
    assert ray["backend"] == "gloo" and ray["requested_backend"] == "gloo" and ray["use_gpu"] is False
    assert ray["world_size"] == 1 and ray["all_reduce_sum"] == 1.0
    assert sorted(map(int, ray["median_ms"])) == sorted(e.size for e in _table("cifar_s28_dplus.yaml").entries)
    assert ray["weighted_ms"] > 0


@pytest.mark.parametrize("argv", [["--batch-scale", "0"], ["--steps", "many"], ["--nope"]])
def test_bad_flag_is_one_line_naming_it_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        gpu_check.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and argv[0] in err


def test_batch_scale_too_small_for_the_solver_names_the_flag(capsys):
    assert gpu_check.main(["--smoke", "--batch-scale", "0.01"]) == 2  # B0 = 1: no B fits 40 px
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--batch-scale" in err


def test_peak_lookup_and_warmup_order():
    assert gpu_check.lookup_peak("NVIDIA H100 PCIe")[0] == 756.0
    assert gpu_check.lookup_peak("NVIDIA H200")[0] == 989.0
    assert gpu_check.lookup_peak("NVIDIA A100-SXM4-80GB")[0] == 312.0
    assert gpu_check.lookup_peak("NVIDIA L4")[0] == 121.0
    assert gpu_check.lookup_peak("NVIDIA H100 NVL")[0] is None
    shapes = gpu_check.workload("dplus", gpu_check.GPU.dplus, gpu_check.parse_options(["--smoke", "--batch-scale", "1"]))
    assert shapes.model == "resnet50"
    order = gpu_check.warmup_order(shapes.shapes)
    costs = [s.size**2 * s.views for s in order]
    assert costs == sorted(costs, reverse=True)
    result = doctest.testmod(gpu_check, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted >= 1
