"""The paper presets in search_spaces/: equal per-step cost within each family, the paper's S(144) tables, the
paper's LR rule and schedule, and a cited source for every preset."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixsize_ray.config import load_config
from mixsize_ray.core.regime import regime_from_config

PRESETS = Path(__file__).resolve().parents[3] / "search_spaces"
CIFAR = ["cifar_fixed", "cifar_s28_bplus", "cifar_s28_dplus", "cifar_official_bplus", "cifar_official_dplus"]
IMAGENET = ["imagenet_fixed", "imagenet_s144_bplus", "imagenet_s144_dplus", "imagenet_s224_bplus",
            "imagenet_s224_dplus"]


def table(name: str, world_size: int | None = None):
    return regime_from_config(load_config(PRESETS / f"{name}.yaml"), world_size=world_size).solve()


@pytest.mark.parametrize("family", [CIFAR, IMAGENET], ids=["cifar", "imagenet"])
def test_every_preset_of_a_family_has_the_fixed_baselines_per_step_cost(family):
    costs = {name: table(name).target_cost for name in family}
    assert set(costs.values()) == {costs[family[0]]}, costs
    assert costs[family[0]] == {"cifar_fixed": 32 * 32 * 64 * 1, "imagenet_fixed": 224 * 224 * 256 * 1}[family[0]]
    for name in family[1:]:  # and every size meets it within the tolerance
        assert all(abs(e.budget_ratio - 1) <= 0.1 for e in table(name).entries), name


def test_s144_bplus_is_the_papers_table_with_a_3_10_lr_factor():
    t = table("imagenet_s144_bplus", world_size=4)  # the official code's 4 devices (base_devices=4)
    assert [(e.size, e.batch, e.duplicates) for e in t.entries] == [(256, 196, 1), (224, 256, 1), (128, 784, 1),
                                                                     (96, 1392, 1)]
    assert t.mean_batch == pytest.approx(0.1 * 196 + 0.1 * 256 + 0.6 * 784 + 0.2 * 1392)  # 794.0
    assert t.lr_scales == pytest.approx([794.0 / 256] * 4)  # linear, once, by the mean batch: 3.10
    assert round(t.mean_lr_scale, 2) == 3.10
    assert t.baseline_steps_per_epoch / t.steps_per_epoch == pytest.approx(794.0 / 256)  # ~3.1x fewer steps


def test_s144_dplus_has_mean_duplicates_3():
    t = table("imagenet_s144_dplus", world_size=4)
    assert [e.duplicates for e in t.entries] == [1, 1, 3, 5]
    assert sum(e.step_share * e.duplicates for e in t.entries) == pytest.approx(3.0)  # "average D = 3" (5.2)
    assert t.lr_scales == [1.0] * 4


def test_imagenet_presets_decay_at_epochs_30_60_80_of_90():
    for name in IMAGENET:
        o = load_config(PRESETS / f"{name}.yaml")
        assert (o.optim.schedule, o.optim.milestone_epochs, o.train.epochs) == ("step", [30, 60, 80], 90)
        assert (o.optim.lr, o.optim.weight_decay, o.optim.weight_decay_on) == (0.1, 1e-4, "weights")


@pytest.mark.parametrize("name", CIFAR + IMAGENET)
def test_b_plus_scales_lr_linearly_by_the_mean_and_d_plus_not(name):
    cfg = load_config(PRESETS / f"{name}.yaml")
    if cfg.regime.mode == "B+" and "official" not in name:
        assert (cfg.optim.lr_scaling, cfg.optim.lr_scaling_by) == ("linear", "mean")
    else:  # fixed and D+ keep B0; the official code has no LR scaling at all
        assert cfg.optim.lr_scaling == "none"


@pytest.mark.parametrize("path", sorted(PRESETS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_preset_cites_its_sources(path):
    head = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
    if path.name == "quickstart.yaml":  # a demo search: it names the paper values it uses and why
        assert "paper section 5.2" in head and "make reproduce" in head
        return
    assert "Sources" in head and ("paper section" in head or "paper (" in head) and "convNet.pytorch" in head


def test_cifar_dplus_d0_is_one_like_the_official_sampled_d_plus():
    for name in ("cifar_s28_dplus", "cifar_official_dplus"):
        assert load_config(PRESETS / f"{name}.yaml").regime.base_duplicates == 1


@pytest.mark.parametrize("name", ["quickstart", "imagenet_s144_search"])
def test_search_spaces_parse_and_enqueue_the_papers_regimes(name):
    from mixsize_ray.tune.spec import load_space

    spec = load_space(PRESETS / f"{name}.yaml")
    modes = [e["mode"] for e in spec.search.enqueue]
    assert "fixed" in modes and "D+" in modes  # the control arm and a paper regime run first
    assert spec.objectives[0].kind == "band"
