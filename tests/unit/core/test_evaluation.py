"""Size sweep: size parsing, default sizes, FLOPs scaling, top-k, JSON schema, PNG plot, minimum size."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from mixsize_ray.core.calibration import BNStatsCache, bn_layers, calibrate_bn
from mixsize_ray.core.evaluation import (
    SweepPlan,
    default_sizes,
    evaluate_top_k,
    gflops_per_image,
    parse_sizes,
    size_sweep,
)
from mixsize_ray.errors import ConfigError

ROW_KEYS = {"size", "top1", "top5", "top1_calibrated", "top5_calibrated", "gflops", "top1_per_gflop"}


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("16,24,32", [16, 24, 32]),
        (" 32, 16 ,24 ", [16, 24, 32]),
        ("32", [32]),
        ("16:32:8", [16, 24, 32]),
        ("16:30:8", [16, 24]),
        ("16:16:4", [16]),
        ("16:64:4", list(range(16, 65, 4))),
        ([40, 8, 8], [8, 40]),
        ((24,), [24]),
        (48, [48]),
    ],
)
def test_parse_sizes_formats(spec, expected):
    assert parse_sizes(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "  ",
        "a,b",
        "16,,32",
        "16;32",
        "0,16",
        "-8",
        "16,-4",
        "16:8:4",
        "16:32:0",
        "16:32:-4",
        "0:32:8",
        "16:32",
        "16:32:4:2",
        "1.5",
        [],
        [0],
        [16, 2.5],
        [True],
        3.5,
        None,
        True,
        {"a": 1},
    ],
)
def test_parse_sizes_invalid(spec):
    with pytest.raises(ConfigError, match="^--sizes: expected"):
        parse_sizes(spec)


def test_parse_sizes_minimum_is_named():
    with pytest.raises(ConfigError, match=r"sizes >= 16 \(the model's minimum size\), got '8,16'"):
        parse_sizes("8,16", min_size=16)


def test_default_sizes():
    assert default_sizes("cifar", 32) == list(range(16, 65, 4))
    assert default_sizes("imagenet", 224) == [224 + 32 * m for m in range(-6, 7)]
    assert default_sizes("imagenet", 128) == [128 + 32 * m for m in range(-3, 7)]  # sizes <= 0 dropped
    with pytest.raises(ConfigError, match="cifar | imagenet"):
        default_sizes("mnist", 28)
    with pytest.raises(ConfigError, match="base_size"):
        default_sizes("cifar", 0)


def conv_model(num_classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, num_classes),
    )


def test_gflops_scale_with_size_squared():
    model = conv_model().train()
    g16, g32 = gflops_per_image(model, 16), gflops_per_image(model, 32)
    assert g16 > 0
    assert g32 / g16 == pytest.approx(4.0, rel=0.05)
    conv_flops = 2 * (3 * 8 * 9 * 32 * 32 + 8 * 16 * 9 * 16 * 16) + 2 * 16 * 10
    assert g32 * 1e9 == pytest.approx(conv_flops, rel=1e-6)
    assert model.training  # mode restored
    assert gflops_per_image(model, 32) == g32  # cached


class FixedLogits(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits
        self.bn = nn.BatchNorm1d(1)

    def forward(self, x):
        return self.logits[x[:, 0, 0, 0].long()]


def test_evaluate_top_k_by_hand():
    logits = torch.tensor(
        [
            [9.0, 1, 2, 3, 4, 5, 6],  # target 0: top1
            [1.0, 9, 8, 7, 6, 5, 4],  # target 2: rank 2
            [1.0, 9, 8, 7, 6, 5, 4],  # target 6: rank 6 -> miss in top5
            [1.0, 2, 3, 4, 5, 6, 9],  # target 2: rank 5 -> top5 hit
        ]
    )
    targets = torch.tensor([0, 2, 6, 2])
    model = FixedLogits(logits)
    x = torch.arange(4).float().view(4, 1, 1, 1).expand(4, 3, 1, 1).contiguous()
    r = evaluate_top_k(model, [(x[:2], targets[:2]), (x[2:], targets[2:])], ks=(1, 2, 5))
    assert r["top1"] == pytest.approx(0.25)
    assert r["top2"] == pytest.approx(0.5)
    assert r["top5"] == pytest.approx(0.75)
    assert r["n"] == 4
    assert r["loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, targets).item(), rel=1e-6)
    # fewer classes than k: top5 of a 3-class task uses top3
    r3 = evaluate_top_k(FixedLogits(logits[:, :3]), [(x, torch.tensor([0, 2, 1, 2]))])
    assert r3["top5"] == 1.0


def sweep_setup(min_size=None):
    model = conv_model(num_classes=6)
    if min_size is not None:
        model.min_size = min_size
    g = torch.Generator().manual_seed(0)

    def eval_batches(size):
        gen = torch.Generator().manual_seed(size)
        return [(torch.randn(16, 3, size, size, generator=gen), torch.randint(0, 6, (16,), generator=gen))]

    def calib_batches(size):
        return [torch.randn(16, 3, size, size, generator=g) * 2 + 1 for _ in range(3)]

    return model, eval_batches, calib_batches


def test_sweep_json_schema_and_plot(tmp_path):
    model, eval_batches, calib_batches = sweep_setup()
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plan = SweepPlan("8:16:4", calibration=calib_batches, calibration_batches=2, metadata={"train_sizes": [8, 16]})
    result = size_sweep(model, plan, eval_batches, progress=False)
    doc = json.loads(result.to_json(tmp_path / "sweep.json"))
    assert json.loads((tmp_path / "sweep.json").read_text()) == doc
    assert [row["size"] for row in doc["sizes"]] == [8, 12, 16]
    for row in doc["sizes"]:
        assert set(row) == ROW_KEYS
        for key in ("top1", "top5", "top1_calibrated", "top5_calibrated"):
            assert 0.0 <= row[key] <= 1.0
        assert row["top5"] >= row["top1"]
        assert row["gflops"] > 0
        assert row["top1_per_gflop"] == pytest.approx(row["top1_calibrated"] / row["gflops"])
    assert doc["accuracy_unit"] == "fraction in [0, 1]" and doc["calibrated"] is True
    assert doc["calibration_batches"] == 2 and doc["train_sizes"] == [8, 16]
    assert result.cache is not None and result.cache.sizes == [8, 12, 16]
    # the model is exactly as before
    assert not model.training
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())

    png = result.plot(tmp_path / "sweep.png")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    import matplotlib.image

    assert matplotlib.image.imread(png).ndim == 3


def test_sweep_calibrated_numbers_are_those_of_calibrated_stats():
    model, eval_batches, calib_batches = sweep_setup()
    result = size_sweep(model, SweepPlan([12], calib_batches, calibration_batches=3), eval_batches, progress=False)
    reference, _, _ = sweep_setup()
    reference.load_state_dict(model.state_dict())
    plain = evaluate_top_k(reference, eval_batches(12))
    result.cache.apply(reference, 12, exact=True)
    calibrated = evaluate_top_k(reference, eval_batches(12))
    row = result.rows[0]
    assert (row.top1, row.top5) == (plain["top1"], plain["top5"])
    assert (row.top1_calibrated, row.top5_calibrated) == (calibrated["top1"], calibrated["top5"])
    assert result.losses[12]["loss_calibrated"] == pytest.approx(calibrated["loss"])


def test_sweep_without_calibration_has_nulls(tmp_path):
    model, eval_batches, _ = sweep_setup()
    result = size_sweep(model, SweepPlan([8, 16], calibrated=False), eval_batches, progress=False)
    doc = result.to_dict()
    assert all(set(r) == ROW_KEYS for r in doc["sizes"])
    assert all(r["top1_calibrated"] is None and r["top5_calibrated"] is None for r in doc["sizes"])
    assert json.loads(json.dumps(doc))["sizes"][0]["top1_calibrated"] is None
    assert doc["top1_per_gflop_from"] == "top1" and result.cache is None
    assert result.plot(tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_sweep_uses_a_given_cache_without_data():
    model, eval_batches, calib_batches = sweep_setup()
    cache = BNStatsCache()
    calibrate_bn(model, calib_batches(8), num_batches=2)
    cache.capture(model, 8)
    result = size_sweep(model, SweepPlan([8]), eval_batches, cache=cache, progress=False)
    assert result.rows[0].top1_calibrated is not None
    assert result.to_dict()["calibration_batches"] is None
    with pytest.raises(ConfigError, match=r"not in the BN cache \[8\], got \[16\]"):
        size_sweep(model, SweepPlan([8, 16]), eval_batches, cache=cache, progress=False)
    with pytest.raises(ConfigError, match=r"not in the BN cache \[\], got \[8\]"):  # calibrated, but no data
        size_sweep(model, SweepPlan([8]), eval_batches, progress=False)


def test_sweep_size_below_model_minimum():
    model, eval_batches, calib_batches = sweep_setup(min_size=12)
    with pytest.raises(ConfigError, match=r"--sizes: expected sizes >= 12 \(the model's minimum size\)"):
        size_sweep(model, SweepPlan([8, 16], calib_batches), eval_batches, progress=False)
    with pytest.raises(ConfigError, match="sizes >= 20"):
        SweepPlan([16], min_size=20)


def test_sweep_bad_calibration_inputs():
    model, eval_batches, calib_batches = sweep_setup()
    with pytest.raises(ConfigError, match="--calibrate-batches"):
        SweepPlan([8], calib_batches, calibration_batches=0)
    no_bn = nn.Sequential(nn.Conv2d(3, 6, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ConfigError, match="BatchNorm"):
        size_sweep(no_bn, SweepPlan([8], calib_batches), eval_batches, progress=False)
    # without calibration a BN-free model is fine
    assert size_sweep(no_bn, SweepPlan([8], calibrated=False), eval_batches, progress=False).rows[0].size == 8


def test_sweep_progress_bar_runs(capsys):
    model, eval_batches, calib_batches = sweep_setup()
    size_sweep(model, SweepPlan([8], calib_batches, calibration_batches=1), eval_batches, progress=True)
    assert "size sweep" in capsys.readouterr().err
    assert len(bn_layers(model)) == 2


def test_plan_parses_sizes_and_refuses_no_accuracy():
    plan = SweepPlan("24, 16,8")
    assert plan.sizes == (8, 16, 24) and (plan.raw, plan.calibrated, plan.flops) == (True, True, True)
    assert plan.calibration_batches == 200 and plan.calibration is None and dict(plan.metadata) == {}
    with pytest.raises(ConfigError, match="sweep metrics: expected raw and/or calibrated accuracy"):
        SweepPlan([8], raw=False, calibrated=False)
    with pytest.raises(ConfigError, match="--sizes"):
        SweepPlan("0:8:4")


def test_plan_metrics_leave_out_what_is_not_asked():
    model, eval_batches, calib_batches = sweep_setup()
    full = size_sweep(model, SweepPlan([8, 12], calib_batches, calibration_batches=2), eval_batches, progress=False)
    model2, _, calib2 = sweep_setup()  # same weights (seeded), same calibration draws
    only_cal = size_sweep(model2, SweepPlan([8, 12], calib2, calibration_batches=2, raw=False, flops=False),
                          eval_batches, progress=False)
    for a, b in zip(full.rows, only_cal.rows, strict=True):
        assert (b.top1, b.top5, b.gflops, b.top1_per_gflop) == (None, None, None, None)
        assert (b.top1_calibrated, b.top5_calibrated) == (a.top1_calibrated, a.top5_calibrated)
        assert a.gflops == gflops_per_image(model, a.size) and a.top1_per_gflop == a.top1_calibrated / a.gflops
    assert only_cal.losses[8]["loss"] is None and only_cal.losses[8]["loss_calibrated"] == full.losses[8]["loss_calibrated"]
    doc = only_cal.to_dict()
    assert doc["top1_per_gflop_from"] is None and doc["eval_images_per_size"] == {"8": 16, "12": 16}
    raw_only = size_sweep(model, SweepPlan([8], calibrated=False, flops=False), eval_batches, progress=False)
    assert raw_only.rows[0].top1 == full.rows[0].top1 and raw_only.rows[0].top1_per_gflop is None


def test_plot_without_raw_or_flops(tmp_path):
    model, eval_batches, calib_batches = sweep_setup()
    plan = SweepPlan([8, 12], calib_batches, calibration_batches=1, raw=False, flops=False)
    png = size_sweep(model, plan, eval_batches, progress=False).plot(tmp_path / "p.png")
    import matplotlib.image

    assert matplotlib.image.imread(png).shape[:2] == (420, 550)  # one panel: accuracy vs size
