"""Gradient smoothing: hand computation over several steps, state round-trip, errors, optimizers, host syncs."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mixsize_ray.core.smoothing import GradientSmoother, smooth_gradients_
from mixsize_ray.errors import ConfigError

ALPHA = 0.9
# (batch size, input scale): different batch sizes AND very different gradient magnitudes per step
STEPS = [(2, 1.0), (16, 6.0), (4, 0.2), (32, 3.0), (8, 0.05), (12, 10.0)]


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


def backward(model: nn.Module, step: int) -> None:
    batch, scale = STEPS[step % len(STEPS)]
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(batch, 3, 8, 8, generator=g) * scale
    y = torch.randint(0, 5, (batch,), generator=g)
    model.zero_grad(set_to_none=True)
    (F.cross_entropy(model(x), y) * scale).backward()


def hand_global_norm(grads: list[torch.Tensor]) -> float:
    return math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))


def test_function_on_known_values():
    a = torch.tensor([3.0, 0.0])
    b = torch.tensor([[0.0, 4.0]])
    g, gbar = smooth_gradients_([a, b], None, ALPHA)  # first step: gbar_0 = g_0, unscaled
    assert float(g) == pytest.approx(5.0) and float(gbar) == pytest.approx(5.0)
    assert a.tolist() == [3.0, 0.0] and b.tolist() == [[0.0, 4.0]]
    a.copy_(torch.tensor([0.0, 12.0]))
    b.copy_(torch.tensor([[0.0, 9.0]]))  # global norm 15 (per-tensor norms 12 and 9)
    g, gbar = smooth_gradients_([a, b], gbar, ALPHA)
    assert float(g) == pytest.approx(15.0)
    assert float(gbar) == pytest.approx(0.9 * 5 + 0.1 * 15)
    assert a.tolist() == pytest.approx([0.0, 12.0 * 6 / 15])
    assert b.flatten().tolist() == pytest.approx([0.0, 9.0 * 6 / 15])


def test_matches_hand_computation_over_steps():
    model = make_model()
    smoother = GradientSmoother(alpha=ALPHA)
    gbar = None
    norms = []
    for t in range(len(STEPS)):
        backward(model, t)
        before = [p.grad.clone() for p in model.parameters()]
        g = hand_global_norm(before)
        gbar = g if t == 0 else ALPHA * gbar + (1 - ALPHA) * g
        norms.append(g)
        factor = smoother.step(model)
        assert float(smoother.last_norm) == pytest.approx(g, rel=1e-5)
        assert float(smoother.smoothed_norm) == pytest.approx(gbar, rel=1e-5)
        assert float(factor) == pytest.approx(gbar / g, rel=1e-5)
        for p, b in zip(model.parameters(), before, strict=True):
            torch.testing.assert_close(p.grad, b * (gbar / g), rtol=1e-5, atol=1e-8)
        # global norm after smoothing is gbar (not per-layer: every tensor has the same factor)
        assert hand_global_norm([p.grad for p in model.parameters()]) == pytest.approx(gbar, rel=1e-5)
    # the test data really varies the norm, and the EMA did not decay towards 0
    assert max(norms) / min(norms) > 20
    assert float(smoother.smoothed_norm) > 0.5 * min(norms)
    assert smoother.num_steps == len(STEPS)


def test_accepts_optimizer_module_and_params_alike():
    results = []
    for kind in ("optimizer", "module", "params"):
        model = make_model()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        smoother = GradientSmoother(ALPHA)
        for t in range(3):
            backward(model, t)
            target = {"optimizer": opt, "module": model, "params": list(model.parameters())}[kind]
            smoother.step(target)
        results.append([p.grad.clone() for p in model.parameters()])
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            torch.testing.assert_close(a, b)


def test_state_dict_roundtrip_continues_identically(tmp_path):
    model_a = make_model()
    smoother_a = GradientSmoother(ALPHA)
    for t in range(3):
        backward(model_a, t)
        smoother_a.step(model_a)
    path = tmp_path / "smoother.pt"
    torch.save(smoother_a.state_dict(), path)
    smoother_b = GradientSmoother(ALPHA)
    smoother_b.load_state_dict(torch.load(path, weights_only=True))
    assert smoother_b.num_steps == 3
    model_b = copy.deepcopy(model_a)
    for t in range(3, 6):
        backward(model_a, t)
        backward(model_b, t)
        smoother_a.step(model_a)
        smoother_b.step(model_b)
        assert float(smoother_b.smoothed_norm) == pytest.approx(float(smoother_a.smoothed_norm), rel=1e-6)
        for pa, pb in zip(model_a.parameters(), model_b.parameters(), strict=True):
            torch.testing.assert_close(pa.grad, pb.grad)
    # a fresh smoother (no state) would have treated step 3 as a first, unscaled step: the state matters
    fresh = GradientSmoother(ALPHA)
    backward(model_b, 3)
    fresh.step(model_b)
    assert float(fresh.smoothed_norm) != pytest.approx(float(smoother_a.smoothed_norm), rel=1e-3)


def test_load_state_dict_warns_on_alpha_mismatch():
    s = GradientSmoother(0.5)
    with pytest.warns(UserWarning, match="alpha"):
        s.load_state_dict({"alpha": 0.9, "smoothed_norm": torch.tensor(2.0), "num_steps": 4})
    assert s.alpha == 0.5 and s.num_steps == 4


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_norm_raises_and_leaves_everything_untouched(bad):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    smoother = GradientSmoother(ALPHA)
    backward(model, 0)
    smoother.step(opt)
    opt.step()
    state = smoother.state_dict()
    weights = [p.detach().clone() for p in model.parameters()]
    backward(model, 1)
    first = next(model.parameters())
    first.grad.view(-1)[0] = bad
    grads = [p.grad.clone() for p in model.parameters()]
    with pytest.raises(FloatingPointError, match=r"gradient norm is (nan|inf) at step 1"):
        smoother.step(opt)
    for p, g in zip(model.parameters(), grads, strict=True):
        torch.testing.assert_close(p.grad, g, equal_nan=True)  # not scaled
    for p, w in zip(model.parameters(), weights, strict=True):
        assert torch.equal(p, w)
    assert smoother.state_dict()["num_steps"] == state["num_steps"]
    assert torch.equal(smoother.state_dict()["smoothed_norm"], state["smoothed_norm"])


def test_zero_norm_raises():
    model = make_model()
    backward(model, 0)
    for p in model.parameters():
        p.grad.zero_()
    with pytest.raises(ValueError, match="gradient norm is 0 at step 0"):
        GradientSmoother(ALPHA).step(model)


def test_unchecked_mode_skips_bad_steps_without_touching_state():
    """check_finite=False (AMP): a NaN step leaves grads (for GradScaler to skip) and state as they were."""
    model = make_model()
    smoother = GradientSmoother(ALPHA, check_finite=False)
    backward(model, 0)
    g0 = hand_global_norm([p.grad for p in model.parameters()])
    smoother.step(model)
    backward(model, 1)
    next(model.parameters()).grad.view(-1)[0] = float("nan")
    smoother.step(model)
    assert torch.isnan(next(model.parameters()).grad.view(-1)[0])
    assert float(smoother.smoothed_norm) == pytest.approx(g0, rel=1e-5)
    backward(model, 2)
    g2 = hand_global_norm([p.grad for p in model.parameters()])
    smoother.step(model)
    assert float(smoother.smoothed_norm) == pytest.approx(ALPHA * g0 + (1 - ALPHA) * g2, rel=1e-5)


def test_unchecked_mode_first_step_nan_then_initialises_from_next():
    model = make_model()
    smoother = GradientSmoother(ALPHA, check_finite=False)
    backward(model, 0)
    next(model.parameters()).grad.view(-1)[0] = float("inf")
    smoother.step(model)
    backward(model, 1)
    g1 = hand_global_norm([p.grad for p in model.parameters()])
    before = [p.grad.clone() for p in model.parameters()]
    smoother.step(model)
    assert float(smoother.smoothed_norm) == pytest.approx(g1, rel=1e-5)  # gbar_0 = first good g
    for p, b in zip(model.parameters(), before, strict=True):
        torch.testing.assert_close(p.grad, b)


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-4),
        lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.05),
    ],
    ids=["sgd", "adamw"],
)
def test_training_with_optimizer_matches_manual_scaling(make_opt):
    model_a = make_model()
    model_b = copy.deepcopy(model_a)
    opt_a, opt_b = make_opt(model_a.parameters()), make_opt(model_b.parameters())
    smoother = GradientSmoother(ALPHA)
    gbar = None
    for t in range(5):
        backward(model_a, t)
        smoother.step(opt_a)
        opt_a.step()
        backward(model_b, t)
        g = hand_global_norm([p.grad for p in model_b.parameters()])
        gbar = g if t == 0 else ALPHA * gbar + (1 - ALPHA) * g
        for p in model_b.parameters():
            p.grad.mul_(gbar / g)
        opt_b.step()
    for pa, pb in zip(model_a.parameters(), model_b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("check_finite,max_syncs", [(True, 1), (False, 0)])
def test_host_syncs_per_step(monkeypatch, check_finite, max_syncs):
    model = make_model()
    smoother = GradientSmoother(ALPHA, check_finite=check_finite)
    calls = []
    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy"):
        original = getattr(torch.Tensor, name)

        def counting(self, *a, _orig=original, _name=name, **k):
            calls.append(_name)
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counting)
    for t in range(3):
        backward(model, t)
        calls.clear()
        smoother.step(model)
        assert len(calls) <= max_syncs, calls


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_no_cuda_sync_when_unchecked():
    model = make_model().cuda()
    smoother = GradientSmoother(ALPHA, check_finite=False)
    x = torch.randn(4, 3, 8, 8, device="cuda")
    model(x).square().mean().backward()
    smoother.step(model)
    torch.cuda.set_sync_debug_mode("error")
    try:
        model.zero_grad()
        model(x).square().mean().backward()
        smoother.step(model)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("alpha", [-0.1, 1.0, 1.5, float("nan"), "high", None])
def test_invalid_alpha(alpha):
    with pytest.raises(ConfigError, match="alpha.*\\[0, 1\\)"):
        GradientSmoother(alpha)


def test_no_gradients_is_an_error():
    with pytest.raises(ValueError, match="no gradients"):
        GradientSmoother().step(make_model())
