"""Learning rate for variable batch sizes: a base schedule times a batch-size scaling rule.

    lr(step, B) = base_lr * scale(B) * schedule(step) * warmup(step)

Each factor is one small frozen dataclass, so :class:`LRSchedule` takes ``(base_lr, total_steps, decay,
warmup, scaling)``:

* :class:`BatchScaling` ``scale``: ``none`` -> 1, ``linear`` -> B / B0, ``sqrt`` -> sqrt(B / B0), where B0 is
  the regime's base batch. ``by="mean"`` (default) scales once by the regime's mean batch (``mean_batch``), so
  the LR does not jump: the paper's rule (section 5.2: "we scale the learning rate linearly ... by a factor of
  B/Bo", B the average batch; 793.6 / 256 = 3.10 for ImageNet S(144) B+). ``by="step"`` uses the batch of the
  current step (B changes every step under a B+ regime); the official code has no per-size LR scaling.
* :class:`Decay` ``schedule``: ``step`` (multiply by ``gamma`` at each milestone; milestones are FRACTIONS of
  ``total_steps``, default (0.3, 0.6, 0.8), or explicit ``milestone_steps``: Goyal et al.'s ImageNet recipe
  decays at epochs 30/60/80 of 90, i.e. ``milestone_steps = [30, 60, 80] * steps_per_epoch``), ``cosine``
  (from 1 after warm-up down to ``final_lr_factor`` at ``total_steps``) or ``constant``.
* :class:`Warmup` ``warmup``: linear from ``start_factor`` (default 0; 0.1 gives "from base/10") at step 0 to 1
  at step ``steps``; it ramps to the *scaled* LR.

The schedule is a pure function of (step, batch): nothing to checkpoint; resuming at step N gives the same LR.
Steps past ``total_steps`` keep the final value. Pure torch-free Python; :meth:`LRSchedule.apply` writes the
value into every param group of a torch optimizer.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mixsize_ray.errors import ConfigError

__all__ = [
    "SCALING_RULES",
    "SCHEDULE_KINDS",
    "SCALING_BY",
    "lr_scale",
    "Decay",
    "Warmup",
    "BatchScaling",
    "LRSchedule",
    "entry_lr_scales",
]

SCALING_RULES = ("none", "linear", "sqrt")
SCHEDULE_KINDS = ("step", "cosine", "constant")
SCALING_BY = ("mean", "step")


def _positive(field: str, value: Any, integer: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if integer:
        ok = ok and float(value).is_integer()
    if not ok:
        raise ConfigError(field, "an integer > 0" if integer else "a number > 0", value)
    return value


def lr_scale(batch: float, base_batch: float, rule: str) -> float:
    """Multiplier for the LR at batch size ``batch`` relative to ``base_batch`` (B0).

    Args:
        batch: images per optimizer step (global, all ranks), > 0. May be a non-integer mean batch.
        base_batch: B0, > 0.
        rule: ``"none"`` -> 1, ``"linear"`` -> B/B0, ``"sqrt"`` -> sqrt(B/B0).

    Example:
        >>> lr_scale(512, 128, "linear"), lr_scale(512, 128, "sqrt"), lr_scale(512, 128, "none")
        (4.0, 2.0, 1.0)
    """
    if rule not in SCALING_RULES:
        raise ConfigError("lr.scaling_rule", " | ".join(SCALING_RULES), rule)
    _positive("batch", batch)
    _positive("lr.base_batch", base_batch)
    if rule == "none":
        return 1.0
    ratio = float(batch) / float(base_batch)
    return ratio if rule == "linear" else math.sqrt(ratio)


@dataclass(frozen=True)
class Decay:
    """The base schedule's shape over ``total_steps``.

    Attributes:
        kind: ``"step"`` | ``"cosine"`` | ``"constant"``, default ``"step"``.
        milestones: for ``kind="step"``, increasing fractions in (0, 1) of ``total_steps``; default
            (0.3, 0.6, 0.8). The LR is multiplied by ``gamma`` from step ``round(m * total_steps)`` on.
        gamma: decay factor per milestone, in (0, 1], default 0.1.
        final_lr_factor: for ``kind="cosine"``, the LR at the end as a fraction of the peak, in [0, 1],
            default 0.
        milestone_steps: for ``kind="step"``, explicit increasing step numbers in (0, total_steps) that
            replace ``milestones`` (e.g. epochs 30/60/80 times steps per epoch); checked by
            :class:`LRSchedule`, which knows ``total_steps``.

    Example:
        >>> Decay("cosine", final_lr_factor=0.1).kind, Decay().milestones
        ('cosine', (0.3, 0.6, 0.8))
    """

    kind: str = "step"
    milestones: Sequence[float] = (0.3, 0.6, 0.8)
    gamma: float = 0.1
    final_lr_factor: float = 0.0
    milestone_steps: Sequence[int] | None = None

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise ConfigError("lr.kind", " | ".join(SCHEDULE_KINDS), self.kind)
        ms = list(self.milestones)
        if any(not isinstance(m, int | float) or isinstance(m, bool) or not (0 < m < 1) for m in ms) or any(
            b <= a for a, b in zip(ms, ms[1:], strict=False)
        ):
            raise ConfigError(
                "lr.milestones", "strictly increasing fractions of total_steps in (0, 1)", self.milestones
            )
        object.__setattr__(self, "milestones", tuple(float(m) for m in ms))
        if self.milestone_steps is not None:
            object.__setattr__(self, "milestone_steps", tuple(self.milestone_steps))
        g = self.gamma
        if not isinstance(g, int | float) or isinstance(g, bool) or not (0 < g <= 1):
            raise ConfigError("lr.gamma", "a number in (0, 1]", g)
        object.__setattr__(self, "gamma", float(g))
        f = self.final_lr_factor
        if not isinstance(f, int | float) or not (0 <= f <= 1):
            raise ConfigError("lr.final_lr_factor", "a number in [0, 1]", f)
        object.__setattr__(self, "final_lr_factor", float(f))


@dataclass(frozen=True)
class Warmup:
    """Linear warm-up from ``start_factor`` times the target LR at step 0 to the target at step ``steps``.

    Attributes:
        steps: warm-up length in steps, >= 0 (and < the schedule's total steps), default 0 (none).
        start_factor: in [0, 1), default 0; 0.1 gives "from base/10".

    Example:
        >>> Warmup(10, start_factor=0.1)
        Warmup(steps=10, start_factor=0.1)
    """

    steps: int = 0
    start_factor: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 0:
            raise ConfigError("lr.warmup_steps", "an integer >= 0 (and < total_steps)", self.steps)
        w0 = self.start_factor
        if not isinstance(w0, int | float) or not (0 <= w0 < 1):
            raise ConfigError("lr.warmup_start_factor", "a number in [0, 1)", w0)
        object.__setattr__(self, "start_factor", float(w0))


@dataclass(frozen=True)
class BatchScaling:
    """How the LR follows the batch size: ``lr_scale(B, base_batch, rule)`` with B the regime's mean batch
    (``by="mean"``, the paper) or the current step's batch (``by="step"``).

    Attributes:
        rule: ``"none"`` | ``"linear"`` | ``"sqrt"``, default ``"none"``.
        by: ``"mean"`` | ``"step"``, default ``"mean"``.
        base_batch: B0 (> 0), default 128. Batches are images per step, global over ranks.
        mean_batch: the regime's mean batch (> 0); required for ``by="mean"`` with a rule other than ``none``.

    Example:
        >>> BatchScaling("linear", base_batch=256, mean_batch=793.6).factor()
        3.1
    """

    rule: str = "none"
    by: str = "mean"
    base_batch: float = 128
    mean_batch: float | None = None

    def __post_init__(self) -> None:
        if self.rule not in SCALING_RULES:
            raise ConfigError("lr.scaling_rule", " | ".join(SCALING_RULES), self.rule)
        if self.by not in SCALING_BY:
            raise ConfigError("lr.scaling_by", " | ".join(SCALING_BY), self.by)
        object.__setattr__(self, "base_batch", float(_positive("lr.base_batch", self.base_batch)))
        if self.mean_batch is not None:
            object.__setattr__(self, "mean_batch", float(_positive("lr.mean_batch", self.mean_batch)))
        elif self.by == "mean" and self.rule != "none":
            raise ConfigError(
                "lr.mean_batch", "the regime's mean batch (> 0) when scaling_by='mean'", self.mean_batch
            )

    def factor(self, batch: float | None = None) -> float:
        """The LR multiplier: by ``batch`` (``by="step"``) or by ``mean_batch``."""
        if self.rule == "none":
            return 1.0
        if self.by == "mean":
            return lr_scale(self.mean_batch, self.base_batch, self.rule)  # type: ignore[arg-type]
        if batch is None:
            raise ValueError("LRSchedule.lr: scaling_by='step' needs this step's batch size")
        return lr_scale(batch, self.base_batch, self.rule)


class LRSchedule:
    """Base schedule (step decay / cosine / constant) with warm-up, composed with batch-size scaling.

    Args:
        base_lr: LR at batch ``scaling.base_batch`` after warm-up, before decay (> 0).
        total_steps: optimizer steps in the whole run (>= 1); milestones and cosine are relative to it.
        decay: the base schedule (:class:`Decay`), default step decay at 30/60/80% by 0.1.
        warmup: linear warm-up (:class:`Warmup`), default none.
        scaling: batch-size scaling (:class:`BatchScaling`), default none.

    Example:
        >>> s = LRSchedule(0.1, total_steps=100, scaling=BatchScaling("linear", by="step", base_batch=128))
        >>> s.lr(0, batch=256), round(s.lr(30, batch=128), 6), round(s.lr(99, batch=64), 8)
        (0.2, 0.01, 5e-05)
        >>> LRSchedule(0.4, 200, Decay("cosine"), Warmup(20)).lr(10)
        0.2
    """

    def __init__(
        self,
        base_lr: float,
        total_steps: int,
        decay: Decay = Decay(),
        warmup: Warmup = Warmup(),
        scaling: BatchScaling = BatchScaling(),
    ):
        self.base_lr = float(_positive("lr.base_lr", base_lr))
        self.total_steps = int(_positive("lr.total_steps", total_steps, integer=True))
        self.decay, self.warmup, self.scaling = decay, warmup, scaling
        self._milestone_steps = [round(m * self.total_steps) for m in decay.milestones]
        if decay.milestone_steps is not None:
            st = list(decay.milestone_steps)
            if any(not isinstance(m, int) or isinstance(m, bool) or not 0 < m < self.total_steps for m in st) or any(
                b <= a for a, b in zip(st, st[1:], strict=False)
            ):
                raise ConfigError(
                    "lr.milestone_steps", f"strictly increasing steps in (0, total_steps={self.total_steps})",
                    decay.milestone_steps,
                )
            self._milestone_steps = st
        if not warmup.steps < self.total_steps:
            raise ConfigError(
                "lr.warmup_steps", f"an integer in [0, total_steps={self.total_steps})", warmup.steps
            )

    def schedule_factor(self, step: int) -> float:
        """Base schedule times warm-up at ``step`` (0-based), without batch scaling; in [0, 1]."""
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ConfigError("step", "an integer >= 0", step)
        s = min(step, self.total_steps)
        d, w = self.decay, self.warmup
        if d.kind == "step":
            factor = d.gamma ** bisect.bisect_right(self._milestone_steps, s)
        elif d.kind == "cosine":
            span = self.total_steps - w.steps
            progress = min(max(s - w.steps, 0) / span, 1.0)
            f = d.final_lr_factor
            factor = f + (1.0 - f) * 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            factor = 1.0
        if s < w.steps:
            w0 = w.start_factor
            factor *= w0 + (1.0 - w0) * s / w.steps
        return factor

    def batch_factor(self, batch: float | None = None) -> float:
        """The batch-size multiplier: by ``batch`` (``scaling.by="step"``) or by ``scaling.mean_batch``."""
        return self.scaling.factor(batch)

    def lr(self, step: int, batch: float | None = None) -> float:
        """LR for optimizer step ``step`` (0-based) whose global batch is ``batch`` images.

        ``batch`` is ignored with ``scaling.by="mean"`` or ``scaling.rule="none"``.
        """
        return self.base_lr * self.batch_factor(batch) * self.schedule_factor(step)

    def apply(self, optimizer: Any, step: int, batch: float | None = None) -> float:
        """Set ``lr`` of every param group of ``optimizer`` for this step; return the value.

        Call once per step, before ``optimizer.step()``.
        """
        value = self.lr(step, batch)
        for group in optimizer.param_groups:
            group["lr"] = value
        return value

    def __repr__(self) -> str:
        return (
            f"LRSchedule(base_lr={self.base_lr}, total_steps={self.total_steps}, decay={self.decay}, "
            f"warmup={self.warmup}, scaling={self.scaling}, milestone_steps={self._milestone_steps})"
        )


def entry_lr_scales(batches: Sequence[float], mean_batch: float, base_batch: float, rule: str,
                    by: str) -> list[float]:
    """The LR multiplier each regime entry trains with (what ``mixsize-ray regime --json`` reports).

    Args:
        batches: the global batch B_i of each entry; mean_batch: the regime's mean batch per step.
        base_batch: B0; rule: ``none | linear | sqrt``; by: ``mean`` (one factor for all) or ``step``.

    Example:
        >>> entry_lr_scales([196, 256, 784, 1392], 793.6, 256, "linear", "mean")
        [3.1, 3.1, 3.1, 3.1]
        >>> entry_lr_scales([128, 512], 320, 128, "sqrt", "step")
        [1.0, 2.0]
    """
    if by not in SCALING_BY:
        raise ConfigError("optim.lr_scaling_by", f"one of {list(SCALING_BY)}", by)
    if by == "mean":
        return [lr_scale(mean_batch, base_batch, rule)] * len(batches)
    return [lr_scale(b, base_batch, rule) for b in batches]
