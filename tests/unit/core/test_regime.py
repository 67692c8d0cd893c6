"""Budget solver: hand-checked values on every preset, shares, notes, invalid regimes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mixsize_ray.config import load_config
from mixsize_ray.core.regime import SizeRegime, regime_from_config
from mixsize_ray.errors import ConfigError

PRESETS = Path(__file__).resolve().parents[3] / "search_spaces"


def table_of(name: str, world_size: int | None = None):
    cfg = load_config(PRESETS / name)
    return regime_from_config(cfg, world_size=world_size).solve()


def sbd(table):
    return [(e.size, e.batch, e.duplicates) for e in table.entries]


def test_cifar_s28_bplus_by_hand():
    # target 32^2*64*1 = 65536; B_i = 65536 / S_i^2: 40 -> 40.96 -> 41, 24 -> 113.8 -> 114, 16 -> 256
    t = table_of("cifar_s28_bplus.yaml")
    assert sbd(t) == [(40, 41, 1), (32, 64, 1), (24, 114, 1), (16, 256, 1)]
    assert t.mean_size == pytest.approx(0.2 * 40 + 0.3 * 32 + 0.3 * 24 + 0.2 * 16)  # = 28, the S(28) name


def test_cifar_s28_bplus_world_size_two_rounds_to_even_batches():
    t = table_of("cifar_s28_bplus.yaml", world_size=2)
    # 40.96 -> 40 or 42: |40*1600/65536-1| = 0.0234 < |42*1600/65536-1| = 0.0254
    assert sbd(t) == [(40, 40, 1), (32, 64, 1), (24, 114, 1), (16, 256, 1)]
    assert all(e.batch % 2 == 0 for e in t.entries)


def test_cifar_s28_dplus_by_hand():
    # D0 = 1 (official sampled_D+), target 32^2*64*1 = 65536 = cifar_fixed's. 16: D = 1024/256 = 4 exactly.
    # 24: D = 1.78 -> 2 gives ratio 1.125 > 10%, so B is fine-tuned to round(65536/(576*2)) = 57.
    # 40: D = 0.64 < 1 -> D = 1, B = 65536/1600 = 40.96 -> 41.
    t = table_of("cifar_s28_dplus.yaml")
    assert t.target_cost == 65536
    assert sbd(t) == [(40, 41, 1), (32, 64, 1), (24, 57, 2), (16, 64, 4)]
    notes = {e.size: " ".join(e.notes) for e in t.entries}
    assert "fine-tuned from 64 to 57" in notes[24]
    assert notes[32] == ""


def test_cifar_official_dplus_shrinks_batch_above_base():
    # 48 > S0: exact D = 0.44 < 1, so D = 1 and B = 65536/2304 = 28.4 -> 28 (the official mixsize_config's 28)
    t = table_of("cifar_official_dplus.yaml")
    e48 = t.entry(48)
    assert (e48.batch, e48.duplicates) == (28, 1)
    assert "batch shrinks" in e48.notes[0]


def test_cifar_official_image_fraction_shares():
    t = table_of("cifar_official_bplus.yaml")
    # image-fraction: p is the image share; step share proportional to p_i / B_i
    inv = {e.size: e.prob / e.batch for e in t.entries}
    total = sum(inv.values())
    for e in t.entries:
        assert e.image_share == pytest.approx(e.prob)
        assert e.step_share == pytest.approx(inv[e.size] / total)


def test_imagenet_s144_bplus_by_hand():
    # target 224^2*256 = 12845056 ; world 8: 256 -> 196 -> 192 (closest multiple of 8 is 192/200: 0.980 vs 1.020)
    t = table_of("imagenet_s144_bplus.yaml")
    assert sbd(t) == [(256, 192, 1), (224, 256, 1), (128, 784, 1), (96, 1392, 1)]
    assert t.mean_size == pytest.approx(144.0)


def test_imagenet_s144_dplus_by_hand():
    # 128: D = 50176/16384 = 3.06 -> 3 ; 96: D = 5.44 -> 5 (ratio 0.918, within 10 %)
    t = table_of("imagenet_s144_dplus.yaml")
    assert sbd(t) == [(256, 192, 1), (224, 256, 1), (128, 256, 3), (96, 256, 5)]


def test_imagenet_s224_presets_sum_and_mean():
    for name in ("imagenet_s224_bplus.yaml", "imagenet_s224_dplus.yaml"):
        t = table_of(name)
        assert t.sizes == [128, 160, 192, 224, 256, 288, 320]
        assert t.entry(224).prob == pytest.approx(0.2)
        assert t.mean_size == pytest.approx(224.0, abs=1e-4)


TRAINING_PRESETS = sorted(p.name for p in PRESETS.glob("*.yaml")
                          if p.name.startswith(("cifar_", "imagenet_")) and not p.name.endswith("_search.yaml"))


def test_presets_found():
    assert len(TRAINING_PRESETS) == 10  # CIFAR S(28) x2, official x2, fixed; ImageNet fixed, S(144) x2, S(224) x2


@pytest.mark.parametrize("preset", TRAINING_PRESETS)
def test_every_preset_within_tolerance_and_shares(preset):
    t = table_of(preset)
    for e in t.entries:
        if t.mode != "fixed":
            assert abs(e.budget_ratio - 1) <= t.tolerance
        assert e.batch % t.world_size == 0 and e.batch >= 1 and e.duplicates >= 1
        assert e.budget_ratio == pytest.approx(e.size**2 * e.batch * e.duplicates / t.target_cost)
    assert sum(e.step_share for e in t.entries) == pytest.approx(1)
    assert sum(e.image_share for e in t.entries) == pytest.approx(1)
    assert t.steps_per_epoch == pytest.approx(t.num_images / sum(e.step_share * e.batch for e in t.entries))


def test_step_sampling_image_share():
    t = SizeRegime([16, 32], [0.5, 0.5], base_size=32, base_batch=64, mode="B+").solve()
    # steps 50/50; images per step 256 vs 64 -> image shares 0.8 / 0.2
    assert [e.image_share for e in t.entries] == pytest.approx([0.8, 0.2])
    assert t.steps_per_epoch == pytest.approx(50000 / 160)
    assert t.baseline_steps_per_epoch == pytest.approx(50000 / 64)


def test_caps_are_reported_and_enforced():
    with pytest.raises(ConfigError, match=r"size 16 .*closest B=128"):
        SizeRegime([16, 32], [0.5, 0.5], base_size=32, base_batch=64, mode="B+", max_batch=128).solve()
    t = SizeRegime([16, 32], [0.5, 0.5], base_size=32, base_batch=64, mode="B+", max_batch=128,
                   tolerance=0.5).solve()
    assert t.entry(16).batch == 128 and "capped" in t.entry(16).notes[0]


def test_unmeetable_budget_names_size_and_closest():
    # size 33 with B0=1: 32^2/33^2 = 0.94 -> B must be 1 -> ratio 1.063 ok; size 50: ratio 2.44 -> error
    with pytest.raises(ConfigError) as err:
        SizeRegime([50, 32], [0.5, 0.5], base_size=32, base_batch=1, mode="B+").solve()
    msg = str(err.value)
    assert "size 50" in msg and "ratio 2.441" in msg and "\n" not in msg


def test_fixed_mode_reports_varying_cost():
    t = SizeRegime([16, 32], [0.5, 0.5], base_size=32, base_batch=64, mode="fixed").solve()
    assert [e.budget_ratio for e in t.entries] == pytest.approx([0.25, 1.0])


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(sizes=[16, 32], probs=[0.5, 0.6]), "regime.probs"),
        (dict(sizes=[16, 32], probs=[-0.5, 1.5]), "regime.probs"),
        (dict(sizes=[16, 32], probs=[1.0]), "regime.probs"),
        (dict(sizes=[16, 16], probs=[0.5, 0.5]), "regime.sizes"),
        (dict(sizes=[0, 32], probs=[0.5, 0.5]), "regime.sizes"),
        (dict(sizes=[], probs=[]), "regime.sizes"),
        (dict(sizes=[32], probs=[1.0], mode="C+"), "regime.mode"),
        (dict(sizes=[32], probs=[1.0], sampling="random"), "regime.sampling"),
        (dict(sizes=[32], probs=[1.0], tolerance=1.5), "regime.tolerance"),
        (dict(sizes=[32], probs=[1.0], base_batch=63, world_size=2), "regime.base_batch"),
        (dict(sizes=[32], probs=[1.0], probs_nan=True), "regime.probs"),
    ],
)
def test_invalid_regimes_one_line(kwargs, field):
    if kwargs.pop("probs_nan", False):
        kwargs["probs"] = [math.nan]
    with pytest.raises(ConfigError) as err:
        SizeRegime(**kwargs).solve()
    assert str(err.value).startswith(field) and "\n" not in str(err.value)
    assert "got" in str(err.value)


def test_to_json_keys():
    doc = table_of("cifar_s28_dplus.yaml").to_json()
    assert {"entries", "mean_size", "steps_per_epoch", "baseline_steps_per_epoch"} <= set(doc)
    for e in doc["entries"]:
        assert {"size", "prob", "batch", "duplicates", "budget_ratio", "step_share", "image_share"} <= set(e)


def test_regime_from_config_copies_the_spec_and_adds_the_run():
    from mixsize_ray.core.regime import RegimeSpec

    cfg = load_config(None, ["regime.sizes=[16,32]", "regime.probs=[0.25,0.75]", "regime.mode=D+",
                             "regime.base_batch=64", "regime.max_duplicates=3", "regime.tolerance=0.2",
                             "optim.lr_scaling=sqrt", "optim.lr_scaling_by=step", "ray.num_workers=2"])
    r = regime_from_config(cfg, num_images=1000)
    assert isinstance(r, RegimeSpec)
    assert (r.sizes, r.probs, r.mode, r.base_batch, r.max_duplicates, r.tolerance) == (
        [16, 32], [0.25, 0.75], "D+", 64, 3, 0.2)
    assert (r.world_size, r.num_images, r.lr_rule, r.lr_by) == (2, 1000, "sqrt", "step")
    r.sizes.append(8)  # a copy: the config keeps its sizes
    assert cfg.regime.sizes == [16, 32]
    assert regime_from_config(cfg, world_size=1).world_size == 1
