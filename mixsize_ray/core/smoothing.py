"""Gradient smoothing: rescale the gradient so its global L2 norm follows an EMA of past norms.

With mixed image sizes the batch size (B+) or the number of duplicates (D+) changes from step to step, so the
gradient's variance, and its norm, jump around. MixSize (Hoffer et al., 2019) smooths that by rescaling every
step's gradient to the running average of the norm:

    g_t    = || concat(all gradients) ||_2          (one global norm, after DDP averaging, AMP-unscaled)
    gbar_0 = g_0                                    (the first step is left unscaled)
    gbar_t = alpha * gbar_{t-1} + (1 - alpha) * g_t
    grad  <- grad * gbar_t / g_t

The plain function :func:`smooth_gradients_` does the tensor work; :class:`GradientSmoother` keeps the state
(``gbar``), decides which gradients to touch, and checkpoints. Neither imports anything but torch.

Host syncs: the norm is one fused computation (``torch.nn.utils.get_total_norm``), the scale one
``torch._foreach_mul_`` per device; no per-parameter ``.item()``. With ``check_finite=True`` (default) there is
exactly ONE host sync per step, to raise a clear error on a zero or non-finite norm *before* anything is
modified. With ``check_finite=False`` there is none: a step whose norm is zero or non-finite leaves the
gradients and the state untouched (so ``torch.amp.GradScaler.step`` still sees the inf/NaN and skips the step,
as AMP with dynamic loss scaling expects).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from mixsize_ray.errors import ConfigError

__all__ = ["smooth_gradients_", "GradientSmoother", "validate_alpha"]


def validate_alpha(alpha: float, field: str = "optim.smoothing_alpha") -> float:
    """Return ``float(alpha)`` if it lies in [0, 1); raise :class:`ConfigError` otherwise.

    alpha = 0 keeps the current norm (no smoothing); alpha -> 1 freezes the norm at g_0.
    """
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise ConfigError(field, "a float in [0, 1)", alpha) from None
    if not (0.0 <= a < 1.0) or math.isnan(a):
        raise ConfigError(field, "a float in [0, 1)", alpha)
    return a


def _check_norm(g_t: Tensor, step: int | None) -> None:
    """Raise on a zero or non-finite norm. Exactly one host sync (a 2-element ``tolist``)."""
    finite, positive = torch.stack([torch.isfinite(g_t), g_t > 0]).tolist()
    if finite and positive:
        return
    at = f" at step {step}" if step is not None else ""
    if not finite:
        raise FloatingPointError(
            f"gradient norm is {g_t.item()}{at}: refusing to smooth (weights left untouched); "
            "lower the learning rate, check the data, or use AMP's GradScaler with check_finite=False"
        )
    raise ValueError(
        f"gradient norm is 0{at}: every gradient is zero, nothing to smooth (weights left untouched); "
        "was backward() called, or are all parameters frozen?"
    )


def smooth_gradients_(
    grads: list[Tensor],
    gbar: Tensor | None,
    alpha: float,
    *,
    check_finite: bool = True,
    step: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Rescale ``grads`` in place so their global L2 norm becomes the EMA of norms; return ``(g_t, gbar_t)``.

    Args:
        grads: gradient tensors (any shapes, devices, dtypes), e.g. ``[p.grad for p in params]``. All of
            them enter ONE global norm. Sparse gradients are not supported.
        gbar: the previous smoothed norm (0-dim tensor), or ``None`` on the first step. A NaN ``gbar`` also
            means "not initialised yet" (what a skipped first step leaves behind).
        alpha: EMA coefficient in [0, 1); the official code uses 0.9.
        check_finite: if True (default), one host sync checks the norm and raises ``FloatingPointError``
            (NaN/inf) or ``ValueError`` (zero) before touching ``grads``. If False, no host sync: such a step
            leaves ``grads`` as they are and returns the previous ``gbar`` (NaN if there was none).
        step: step number, only used in error messages.

    Returns:
        ``(g_t, gbar_t)``: 0-dim float32 tensors on the device of the first gradient; ``g_t`` is the norm
        before scaling, ``gbar_t`` the smoothed norm (= the norm after scaling).

    Example:
        >>> p = torch.nn.Parameter(torch.zeros(3)); p.grad = torch.tensor([3.0, 4.0, 0.0])
        >>> g, gbar = smooth_gradients_([p.grad], None, 0.9)   # first step: unscaled
        >>> float(g), float(gbar)
        (5.0, 5.0)
        >>> p.grad = torch.tensor([0.0, 0.0, 15.0])
        >>> g, gbar = smooth_gradients_([p.grad], gbar, 0.9)   # 0.9*5 + 0.1*15 = 6
        >>> float(g), round(float(gbar), 4), [round(v, 4) for v in p.grad.tolist()]
        (15.0, 6.0, [0.0, 0.0, 6.0])
    """
    alpha = validate_alpha(alpha, "alpha")
    if len(grads) == 0:
        raise ValueError(
            "smooth_gradients_: got no gradients (is every parameter frozen, or was backward() not called?)"
        )
    for g in grads:
        if g.is_sparse:
            raise ValueError("smooth_gradients_: sparse gradients are not supported")

    # One fused global norm over every gradient (foreach per device/dtype group, then one norm of the norms).
    g_t = torch.nn.utils.get_total_norm(grads, norm_type=2.0).to(torch.float32)
    if check_finite:
        _check_norm(g_t, step)

    if gbar is None:
        prev = torch.full_like(g_t, float("nan"))
    else:
        prev = gbar.detach().to(device=g_t.device, dtype=torch.float32)
    ema = alpha * prev + (1.0 - alpha) * g_t
    new = torch.where(torch.isnan(prev), g_t, ema)  # gbar_0 = g_0
    ok = torch.isfinite(g_t) & (g_t > 0)
    gbar_t = torch.where(ok, new, prev)
    scale = torch.where(ok, gbar_t / g_t, torch.ones_like(g_t))

    by_device: dict[torch.device, list[Tensor]] = {}
    for g in grads:
        by_device.setdefault(g.device, []).append(g)
    for device, group in by_device.items():
        torch._foreach_mul_(group, scale.to(device))
    return g_t, gbar_t


def _collect_grads(target: Any) -> list[Tensor]:
    """Gradients of an optimizer's param groups, a module's parameters, or an iterable of parameters."""
    if isinstance(target, torch.optim.Optimizer):
        params: Iterable[Tensor] = (p for group in target.param_groups for p in group["params"])
    elif isinstance(target, torch.nn.Module):
        params = target.parameters()
    elif isinstance(target, Tensor):
        params = [target]
    else:
        params = target
    seen: set[int] = set()
    grads: list[Tensor] = []
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(
                f"GradientSmoother.step: expected an optimizer, a module or parameters, got {type(p).__name__}"
            )
        if id(p) in seen or p.grad is None:
            continue
        seen.add(id(p))
        grads.append(p.grad)
    return grads


class GradientSmoother:
    """Keeps the EMA of the global gradient norm across steps and rescales each step's gradients.

    Call :meth:`step` after ``loss.backward()`` (and after DDP's gradient all-reduce, which has happened
    when ``backward()`` returns, unless inside ``no_sync()``), before ``optimizer.step()``. With AMP call it
    after ``scaler.unscale_(optimizer)`` and pass ``check_finite=False`` so overflow steps are skipped by
    the scaler instead of raising. Under DDP every rank sees the same averaged gradients, so every rank
    computes the same norm and keeps the same state; no extra communication. (Sharded gradients, e.g. FSDP,
    would need the norm all-reduced: not supported.)

    Args:
        alpha: EMA coefficient in [0, 1), default 0.9 (the official code's value).
        check_finite: see :func:`smooth_gradients_`; True costs one host sync per step.

    Attributes:
        last_norm: g_t of the last step (0-dim float32 tensor on the gradients' device), None before it.
        smoothed_norm: gbar_t after the last step (0-dim tensor), None before the first step.
        num_steps: number of :meth:`step` calls so far.

    Example:
        >>> model = torch.nn.Linear(4, 2); opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> smoother = GradientSmoother(alpha=0.9)
        >>> model(torch.randn(8, 4)).square().mean().backward()
        >>> _ = smoother.step(opt)      # first step: unscaled, gbar_0 = g_0
        >>> opt.step(); opt.zero_grad()
        >>> torch.allclose(smoother.last_norm, smoother.smoothed_norm)
        True
    """

    def __init__(self, alpha: float = 0.9, *, check_finite: bool = True):
        self.alpha = validate_alpha(alpha)
        self.check_finite = bool(check_finite)
        self.last_norm: Tensor | None = None
        self.smoothed_norm: Tensor | None = None
        self.num_steps = 0

    def step(self, parameters_or_optimizer: Any) -> Tensor:
        """Smooth the gradients of an optimizer, a module, or an iterable of parameters, in place.

        Returns the multiplier applied (0-dim tensor, ``gbar_t / g_t``; 1 on the first step). Raises
        ``FloatingPointError``/``ValueError`` on a non-finite/zero norm when ``check_finite`` is set, with the
        state and the gradients left unchanged.
        """
        grads = _collect_grads(parameters_or_optimizer)
        g_t, gbar_t = smooth_gradients_(
            grads, self.smoothed_norm, self.alpha, check_finite=self.check_finite, step=self.num_steps
        )
        self.last_norm, self.smoothed_norm = g_t, gbar_t
        self.num_steps += 1
        ok = torch.isfinite(g_t) & (g_t > 0)
        return torch.where(ok, gbar_t / g_t, torch.ones_like(g_t))

    def state_dict(self) -> dict[str, Any]:
        """``{"alpha": float, "smoothed_norm": CPU 0-dim tensor or None, "num_steps": int}``.

        Plain tensors and numbers, safe for ``torch.load(..., weights_only=True)``. (One host copy.)
        """
        gbar = None if self.smoothed_norm is None else self.smoothed_norm.detach().to("cpu", copy=True)
        return {"alpha": self.alpha, "smoothed_norm": gbar, "num_steps": self.num_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``smoothed_norm`` and ``num_steps``. The constructor's ``alpha`` is kept (the config wins);
        a different saved alpha gives a warning."""
        missing = {"smoothed_norm", "num_steps"} - set(state)
        if missing:
            raise ValueError(f"GradientSmoother.load_state_dict: missing keys {sorted(missing)}")
        saved_alpha = state.get("alpha")
        if saved_alpha is not None and float(saved_alpha) != self.alpha:
            warnings.warn(
                f"GradientSmoother: checkpoint alpha={saved_alpha} differs from configured alpha={self.alpha}; "
                "using the configured value",
                stacklevel=2,
            )
        gbar = state["smoothed_norm"]
        self.smoothed_norm = (
            None if gbar is None else torch.as_tensor(gbar, dtype=torch.float32).detach().clone()
        )
        self.last_norm = None
        self.num_steps = int(state["num_steps"])

    def __repr__(self) -> str:
        return f"GradientSmoother(alpha={self.alpha}, check_finite={self.check_finite}, num_steps={self.num_steps})"
