"""LR: batch-size scaling rules (per step and by mean batch), step decay, cosine, warm-up, validation."""

from __future__ import annotations

import math

import pytest
import torch

from mixsize_ray.core.lr import BatchScaling, Decay, LRSchedule, Warmup, lr_scale
from mixsize_ray.errors import ConfigError


@pytest.mark.parametrize(
    "batch,rule,expected",
    [
        (512, "none", 1.0),
        (512, "linear", 4.0),
        (512, "sqrt", 2.0),
        (32, "linear", 0.25),
        (32, "sqrt", 0.5),
        (128, "sqrt", 1.0),
        (192.5, "linear", 192.5 / 128),
    ],
)
def test_lr_scale_rules(batch, rule, expected):
    assert lr_scale(batch, 128, rule) == pytest.approx(expected)


@pytest.mark.parametrize(
    "batch,base,rule,field",
    [
        (0, 128, "linear", "batch"),
        (-4, 128, "linear", "batch"),
        (64, 0, "sqrt", "base_batch"),
        (64, 128, "cube", "scaling_rule"),
        (64, 128, None, "scaling_rule"),
        (float("nan"), 128, "linear", "batch"),
    ],
)
def test_lr_scale_invalid(batch, base, rule, field):
    with pytest.raises(ConfigError, match=field):
        lr_scale(batch, base, rule)


CONSTANT = Decay("constant")


@pytest.mark.parametrize(
    "rule,factor", [("none", lambda r: 1.0), ("linear", lambda r: r), ("sqrt", math.sqrt)]
)
def test_scaling_by_step_follows_each_batch(rule, factor):
    s = LRSchedule(0.1, 100, CONSTANT, scaling=BatchScaling(rule, by="step", base_batch=128))
    for step, batch in [(0, 128), (1, 512), (2, 32), (3, 2048)]:
        assert s.lr(step, batch) == pytest.approx(0.1 * factor(batch / 128))


@pytest.mark.parametrize("rule,factor", [("none", 1.0), ("linear", 1.5), ("sqrt", math.sqrt(1.5))])
def test_scaling_by_mean_ignores_step_batch(rule, factor):
    s = LRSchedule(0.1, 100, CONSTANT, scaling=BatchScaling(rule, by="mean", base_batch=128, mean_batch=192))
    for batch in (32, 128, 4096, None):
        assert s.lr(5, batch) == pytest.approx(0.1 * factor)


def test_step_needs_batch_and_mean_needs_mean_batch():
    s = LRSchedule(0.1, total_steps=10, scaling=BatchScaling("linear", by="step"))
    with pytest.raises(ValueError, match="batch"):
        s.lr(0)
    with pytest.raises(ConfigError, match="mean_batch"):
        BatchScaling("sqrt", by="mean")
    # rule none needs neither
    assert LRSchedule(0.1, total_steps=10, scaling=BatchScaling(by="mean")).lr(0) == pytest.approx(0.1)


def test_defaults_are_step_decay_without_warmup_or_scaling():
    s = LRSchedule(1.0, total_steps=100)
    assert (s.decay, s.warmup, s.scaling) == (Decay("step", (0.3, 0.6, 0.8), 0.1), Warmup(0), BatchScaling("none"))
    assert [s.lr(k, batch=4096) for k in (0, 29, 30, 60, 80)] == pytest.approx([1, 1, 0.1, 0.01, 0.001])


def test_step_decay_milestones():
    s = LRSchedule(1.0, total_steps=1000, decay=Decay("step", milestones=(0.3, 0.6, 0.8), gamma=0.1))
    expected = {
        0: 1,
        299: 1,
        300: 0.1,
        599: 0.1,
        600: 0.01,
        799: 0.01,
        800: 1e-3,
        999: 1e-3,
        1000: 1e-3,
        5000: 1e-3,
    }
    for step, value in expected.items():
        assert s.lr(step) == pytest.approx(value), step


def test_explicit_milestone_steps_replace_fractions():
    s = LRSchedule(1.0, 90, Decay("step", milestones=(0.5,), milestone_steps=[30, 60, 80]))
    assert [s.lr(k) for k in (29, 30, 59, 60, 80)] == pytest.approx([1, 0.1, 0.1, 0.01, 0.001])


def test_step_decay_composes_with_scaling():
    s = LRSchedule(0.1, 100, Decay("step", milestones=(0.5,), gamma=0.2),
                   scaling=BatchScaling("linear", by="step", base_batch=64))
    assert s.lr(10, 256) == pytest.approx(0.4)
    assert s.lr(60, 256) == pytest.approx(0.08)
    assert s.lr(60, 32) == pytest.approx(0.01)


def test_cosine_endpoints_and_midpoint():
    s = LRSchedule(0.4, total_steps=200, decay=Decay("cosine"))
    assert s.lr(0) == pytest.approx(0.4)
    assert s.lr(100) == pytest.approx(0.2)
    assert s.lr(200) == pytest.approx(0.0, abs=1e-12)
    assert s.lr(10_000) == pytest.approx(0.0, abs=1e-12)
    values = [s.lr(t) for t in range(201)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    s = LRSchedule(0.4, total_steps=200, decay=Decay("cosine", final_lr_factor=0.1))
    assert s.lr(200) == pytest.approx(0.04)


def test_warmup_linear_to_scaled_lr():
    s = LRSchedule(0.1, 100, CONSTANT, Warmup(10), BatchScaling("linear", by="step", base_batch=100))
    assert s.lr(0, 200) == pytest.approx(0.0)
    assert s.lr(5, 200) == pytest.approx(0.1)  # half of the scaled 0.2
    assert s.lr(10, 200) == pytest.approx(0.2)
    assert s.lr(50, 200) == pytest.approx(0.2)
    s = LRSchedule(0.1, 100, CONSTANT, Warmup(10, start_factor=0.1))
    assert s.lr(0) == pytest.approx(0.01)
    assert s.lr(5) == pytest.approx(0.01 + 0.09 * 0.5)


def test_warmup_then_cosine_starts_at_peak():
    s = LRSchedule(1.0, 110, Decay("cosine"), Warmup(10))
    assert s.lr(5) == pytest.approx(0.5)
    assert s.lr(10) == pytest.approx(1.0)
    assert s.lr(60) == pytest.approx(0.5)
    assert s.lr(110) == pytest.approx(0.0, abs=1e-12)


def test_apply_sets_every_param_group():
    p1, p2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p1]}, {"params": [p2], "weight_decay": 0.0}], lr=1.0)
    s = LRSchedule(0.1, 10, CONSTANT, scaling=BatchScaling("sqrt", by="step", base_batch=16))
    assert s.apply(opt, 3, 64) == pytest.approx(0.2)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.2, 0.2])


def test_pure_function_of_step():
    a = LRSchedule(0.1, 50, Decay("cosine"), Warmup(5))
    b = LRSchedule(0.1, 50, Decay("cosine"), Warmup(5))
    assert [a.lr(t) for t in range(30, 50)] == [b.lr(t) for t in range(30, 50)]


@pytest.mark.parametrize(
    "make,field",
    [
        (lambda: LRSchedule(0, 100), "base_lr"),
        (lambda: LRSchedule(0.1, 0), "total_steps"),
        (lambda: LRSchedule(0.1, 2.5), "total_steps"),
        (lambda: Decay("linear"), "kind"),
        (lambda: Decay(milestones=(0.6, 0.3)), "milestones"),
        (lambda: Decay(milestones=(0.3, 1.2)), "milestones"),
        (lambda: Decay(milestones=(30, 60)), "milestones"),
        (lambda: LRSchedule(0.1, 100, Decay(milestone_steps=[60, 30])), "milestone_steps"),
        (lambda: LRSchedule(0.1, 100, Decay(milestone_steps=[50, 100])), "milestone_steps"),
        (lambda: Decay(gamma=0), "gamma"),
        (lambda: Decay(gamma=1.5), "gamma"),
        (lambda: Decay(final_lr_factor=2), "final_lr_factor"),
        (lambda: Warmup(-1), "warmup_steps"),
        (lambda: LRSchedule(0.1, 100, warmup=Warmup(100)), "warmup_steps"),
        (lambda: Warmup(start_factor=1.0), "warmup_start_factor"),
        (lambda: BatchScaling("quadratic"), "scaling_rule"),
        (lambda: BatchScaling(by="epoch"), "scaling_by"),
        (lambda: BatchScaling(base_batch=-1), "base_batch"),
        (lambda: BatchScaling(mean_batch=0), "mean_batch"),
    ],
)
def test_invalid_config(make, field):
    with pytest.raises(ConfigError, match=field):
        make()


@pytest.mark.parametrize("step", [-1, 1.5, True])
def test_invalid_step(step):
    with pytest.raises(ConfigError, match="step"):
        LRSchedule(0.1, total_steps=10).lr(step)
