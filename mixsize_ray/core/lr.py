"""Learning rate for variable batch sizes: a base schedule times a batch-size scaling rule.

    lr(step, B) = base_lr * scale(B) * schedule(step) * warmup(step)

* ``scale``: ``none`` -> 1, ``linear`` -> B / B0, ``sqrt`` -> sqrt(B / B0), where B0 is the regime's base batch.
  ``scaling_by="mean"`` (default) scales once by the regime's mean batch (``mean_batch``), so the LR does not
  jump: the paper's rule (section 5.2: "we scale the learning rate linearly ... by a factor of B/Bo", B the
  average batch; 793.6 / 256 = 3.10 for ImageNet S(144) B+). ``scaling_by="step"`` uses the batch of the
  current step (B changes every step under a B+ regime); the official code has no per-size LR scaling.
* ``schedule``: ``step`` (multiply by ``gamma`` at each milestone; milestones are FRACTIONS of
  ``total_steps``, default (0.3, 0.6, 0.8), or explicit ``milestone_steps``: Goyal et al.'s ImageNet recipe
  decays at epochs 30/60/80 of 90, i.e. ``milestone_steps = [30, 60, 80] * steps_per_epoch``), ``cosine``
  (from 1 after warm-up down to ``final_lr_factor`` at ``total_steps``) or ``constant``.
* ``warmup``: linear from ``warmup_start_factor`` (default 0; 0.1 gives "from base/10") at step 0 to 1 at step
  ``warmup_steps``; it ramps to the *scaled* LR.

The schedule is a pure function of (step, batch): nothing to checkpoint; resuming at step N gives the same LR.
Steps past ``total_steps`` keep the final value. Pure torch-free Python; :meth:`LRSchedule.apply` writes the
value into every param group of a torch optimizer.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

from mixsize_ray.errors import ConfigError

__all__ = ["SCALING_RULES", "SCHEDULE_KINDS", "SCALING_BY", "lr_scale", "LRSchedule", "entry_lr_scales"]

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


class LRSchedule:
    """Base schedule (step decay / cosine / constant) with warm-up, composed with batch-size scaling.

    Args:
        base_lr: LR at batch ``base_batch`` after warm-up, before decay (> 0).
        total_steps: optimizer steps in the whole run (>= 1); milestones and cosine are relative to it.
        kind: ``"step"`` | ``"cosine"`` | ``"constant"``, default ``"step"``.
        milestones: for ``kind="step"``, increasing fractions in (0, 1) of ``total_steps``; default
            (0.3, 0.6, 0.8). The LR is multiplied by ``gamma`` from step ``round(m * total_steps)`` on.
        gamma: decay factor per milestone, in (0, 1], default 0.1.
        warmup_steps: linear warm-up length in steps (>= 0, < total_steps), default 0.
        warmup_start_factor: warm-up starts at this fraction of the target LR, in [0, 1), default 0.
        scaling_rule: ``"none"`` | ``"linear"`` | ``"sqrt"``, default ``"none"``.
        scaling_by: ``"mean"`` (``mean_batch``, the paper) | ``"step"`` (current step's batch), default ``"mean"``.
        base_batch: B0 (> 0), default 128. The batch is images per step, global over ranks.
        mean_batch: the regime's mean batch (> 0); required for ``scaling_by="mean"`` with a rule other
            than ``none``.
        final_lr_factor: for ``kind="cosine"``, the LR at the end as a fraction of the peak, default 0.
        milestone_steps: for ``kind="step"``, explicit increasing step numbers in (0, total_steps) that
            replace ``milestones`` (e.g. epochs 30/60/80 times steps per epoch).

    Example:
        >>> s = LRSchedule(0.1, total_steps=100, kind="step", scaling_rule="linear", scaling_by="step",
        ...                base_batch=128)
        >>> s.lr(0, batch=256), round(s.lr(30, batch=128), 6), round(s.lr(99, batch=64), 8)
        (0.2, 0.01, 5e-05)
    """

    def __init__(
        self,
        base_lr: float,
        total_steps: int,
        kind: str = "step",
        milestones: Sequence[float] = (0.3, 0.6, 0.8),
        gamma: float = 0.1,
        warmup_steps: int = 0,
        warmup_start_factor: float = 0.0,
        scaling_rule: str = "none",
        scaling_by: str = "mean",
        base_batch: float = 128,
        mean_batch: float | None = None,
        final_lr_factor: float = 0.0,
        milestone_steps: Sequence[int] | None = None,
    ):
        self.base_lr = float(_positive("lr.base_lr", base_lr))
        self.total_steps = int(_positive("lr.total_steps", total_steps, integer=True))
        if kind not in SCHEDULE_KINDS:
            raise ConfigError("lr.kind", " | ".join(SCHEDULE_KINDS), kind)
        self.kind = kind
        ms = list(milestones)
        if any(not isinstance(m, int | float) or isinstance(m, bool) or not (0 < m < 1) for m in ms) or any(
            b <= a for a, b in zip(ms, ms[1:], strict=False)
        ):
            raise ConfigError(
                "lr.milestones", "strictly increasing fractions of total_steps in (0, 1)", milestones
            )
        self.milestones = tuple(float(m) for m in ms)
        self._milestone_steps = [round(m * self.total_steps) for m in self.milestones]
        if milestone_steps is not None:
            st = list(milestone_steps)
            if any(not isinstance(m, int) or isinstance(m, bool) or not 0 < m < self.total_steps for m in st) or any(
                b <= a for a, b in zip(st, st[1:], strict=False)
            ):
                raise ConfigError(
                    "lr.milestone_steps", f"strictly increasing steps in (0, total_steps={self.total_steps})",
                    milestone_steps,
                )
            self._milestone_steps = st
        if not isinstance(gamma, int | float) or isinstance(gamma, bool) or not (0 < gamma <= 1):
            raise ConfigError("lr.gamma", "a number in (0, 1]", gamma)
        self.gamma = float(gamma)
        if (
            not isinstance(warmup_steps, int)
            or isinstance(warmup_steps, bool)
            or not (0 <= warmup_steps < self.total_steps)
        ):
            raise ConfigError(
                "lr.warmup_steps", f"an integer in [0, total_steps={self.total_steps})", warmup_steps
            )
        self.warmup_steps = warmup_steps
        if not isinstance(warmup_start_factor, int | float) or not (0 <= warmup_start_factor < 1):
            raise ConfigError("lr.warmup_start_factor", "a number in [0, 1)", warmup_start_factor)
        self.warmup_start_factor = float(warmup_start_factor)
        if scaling_rule not in SCALING_RULES:
            raise ConfigError("lr.scaling_rule", " | ".join(SCALING_RULES), scaling_rule)
        self.scaling_rule = scaling_rule
        if scaling_by not in SCALING_BY:
            raise ConfigError("lr.scaling_by", " | ".join(SCALING_BY), scaling_by)
        self.scaling_by = scaling_by
        self.base_batch = float(_positive("lr.base_batch", base_batch))
        if mean_batch is not None:
            _positive("lr.mean_batch", mean_batch)
        elif scaling_by == "mean" and scaling_rule != "none":
            raise ConfigError(
                "lr.mean_batch", "the regime's mean batch (> 0) when scaling_by='mean'", mean_batch
            )
        self.mean_batch = None if mean_batch is None else float(mean_batch)
        if not isinstance(final_lr_factor, int | float) or not (0 <= final_lr_factor <= 1):
            raise ConfigError("lr.final_lr_factor", "a number in [0, 1]", final_lr_factor)
        self.final_lr_factor = float(final_lr_factor)

    def schedule_factor(self, step: int) -> float:
        """Base schedule times warm-up at ``step`` (0-based), without batch scaling; in [0, 1]."""
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ConfigError("step", "an integer >= 0", step)
        s = min(step, self.total_steps)
        if self.kind == "step":
            factor = self.gamma ** bisect.bisect_right(self._milestone_steps, s)
        elif self.kind == "cosine":
            span = self.total_steps - self.warmup_steps
            progress = min(max(s - self.warmup_steps, 0) / span, 1.0)
            f = self.final_lr_factor
            factor = f + (1.0 - f) * 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            factor = 1.0
        if s < self.warmup_steps:
            w0 = self.warmup_start_factor
            factor *= w0 + (1.0 - w0) * s / self.warmup_steps
        return factor

    def batch_factor(self, batch: float | None = None) -> float:
        """The batch-size multiplier: by ``batch`` (``scaling_by="step"``) or by ``mean_batch``."""
        if self.scaling_rule == "none":
            return 1.0
        if self.scaling_by == "mean":
            return lr_scale(self.mean_batch, self.base_batch, self.scaling_rule)  # type: ignore[arg-type]
        if batch is None:
            raise ValueError("LRSchedule.lr: scaling_by='step' needs this step's batch size")
        return lr_scale(batch, self.base_batch, self.scaling_rule)

    def lr(self, step: int, batch: float | None = None) -> float:
        """LR for optimizer step ``step`` (0-based) whose global batch is ``batch`` images.

        ``batch`` is ignored with ``scaling_by="mean"`` or ``scaling_rule="none"``.
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
            f"LRSchedule(base_lr={self.base_lr}, total_steps={self.total_steps}, kind={self.kind!r}, "
            f"milestones={self.milestones}, gamma={self.gamma}, warmup_steps={self.warmup_steps}, "
            f"scaling_rule={self.scaling_rule!r}, scaling_by={self.scaling_by!r}, base_batch={self.base_batch}, "
            f"mean_batch={self.mean_batch}, milestone_steps={self._milestone_steps})"
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
