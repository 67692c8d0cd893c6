"""An epoch's running loss, accuracy and first non-finite step, kept on the device: no host sync per step.

On a GPU every ``float(loss)``, ``if torch.isfinite(loss)`` or ``.item()`` in the step stalls the pipeline
until the step's kernels finish. :class:`EpochSums` accumulates into device tensors instead, so the host
reads them only when it asks (:meth:`EpochSums.read`, :meth:`EpochSums.totals`): once per log interval and
at the end of the epoch (:class:`~mixsize_ray.train.loop.TrainingLoop`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class StepOutcome:
    """What one optimizer step produced (device tensors, detached).

    Attributes:
        loss: ``[]`` the step's mean loss.
        logits: ``[N, classes]`` the step's outputs (``N`` = images x duplicates on this rank).
        targets: ``[N]`` labels.
        grad_norm: ``[]`` the global gradient norm before smoothing, or None (no smoothing, or AMP's scaler
            owns non-finite gradients).
        grad_norm_smoothed: ``[]`` the smoothed norm the gradient was rescaled to, or None.
    """

    loss: Tensor
    logits: Tensor
    targets: Tensor
    grad_norm: Tensor | None = None
    grad_norm_smoothed: Tensor | None = None


@dataclass(frozen=True)
class Reading:
    """One host read: the last step's loss and the first non-finite step (-1: none) with its loss; the last
    step's gradient norm, raw and smoothed (NaN: not known)."""

    last_loss: float
    first_bad: int
    bad_loss: float
    bad_grad_norm: float
    grad_norm: float = float("nan")
    grad_norm_smoothed: float = float("nan")


class EpochSums:
    """Device-side sums of loss x views and correct predictions, the number of views (host int), and the
    index (within the epoch) of the first step whose loss or gradient norm was not finite.

    Example:
        >>> sums = EpochSums("cpu")
        >>> y = torch.tensor([0, 1])
        >>> sums.add(StepOutcome(torch.tensor(0.5), torch.tensor([[2.0, 0.0], [3.0, 0.0]]), y), 16)
        >>> sums.add(StepOutcome(torch.tensor(float("nan")), torch.zeros(2, 2), y), 24)
        >>> r = sums.read(); (r.last_loss, r.first_bad, sums.sizes[r.first_bad])
        (nan, 1, 24)
    """

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.loss = torch.zeros((), dtype=torch.float64, device=self.device)
        self.correct = torch.zeros((), dtype=torch.float64, device=self.device)
        self.first_bad = torch.full((), -1, dtype=torch.int64, device=self.device)
        self.bad_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        self.bad_grad_norm = torch.zeros((), dtype=torch.float64, device=self.device)
        self.last_loss: Tensor | None = None
        self._zero = torch.zeros((), dtype=torch.float64, device=self.device)
        self._nan = torch.full((), float("nan"), dtype=torch.float64, device=self.device)
        self.last_grad_norm, self.last_grad_norm_smoothed = self._nan, self._nan
        self.views = 0
        self.sizes: list[int] = []

    def add(self, step: StepOutcome, size: int) -> None:
        """Accumulate one step (device ops only; ``size`` is recorded host-side to name a bad step)."""
        n = int(step.logits.shape[0])
        loss = step.loss.double()
        finite = torch.isfinite(loss)
        grad = self._zero
        if step.grad_norm is not None:
            grad = step.grad_norm.double()
            finite = finite & torch.isfinite(grad)
            self.last_grad_norm = grad
        if step.grad_norm_smoothed is not None:
            self.last_grad_norm_smoothed = step.grad_norm_smoothed.double()
        first = (self.first_bad < 0) & ~finite
        self.first_bad = torch.where(first, len(self.sizes), self.first_bad)
        self.bad_loss = torch.where(first, loss, self.bad_loss)
        self.bad_grad_norm = torch.where(first, grad, self.bad_grad_norm)
        self.loss += torch.where(finite, loss, 0.0) * n
        self.correct += (step.logits.argmax(1) == step.targets).sum()
        self.last_loss = loss
        self.views += n
        self.sizes.append(size)

    def read(self) -> Reading:
        """One host sync: the last loss, the first non-finite step and the last gradient norms."""
        last = self.last_loss if self.last_loss is not None else self._nan
        values = torch.stack([last, self.first_bad.double(), self.bad_loss, self.bad_grad_norm,
                              self.last_grad_norm, self.last_grad_norm_smoothed]).tolist()
        return Reading(values[0], int(values[1]), values[2], values[3], values[4], values[5])

    def totals(self, world_size: int = 1) -> tuple[float, float, int]:
        """``(loss x views, correct, views)`` summed over ranks when torch.distributed runs with
        ``world_size > 1`` (one all-reduce), else this rank's; one host sync."""
        t = torch.stack([self.loss, self.correct,
                         torch.tensor(float(self.views), dtype=torch.float64, device=self.device)])
        if world_size > 1 and dist.is_available() and dist.is_initialized():
            dist.all_reduce(t)  # nccl reduces device tensors only: t stays on the device
        loss, correct, views = t.tolist()
        return loss, correct, int(views)
