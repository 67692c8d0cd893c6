"""Batch-augmentation loss: cross-entropy over B images x D augmented views.

Rows are laid out sample-major: ``[i0v0, i0v1, ..., i0v(D-1), i1v0, ...]`` (what the data loader yields
for D duplicates), so row ``r`` belongs to image ``r // D``.

By default the loss is the mean over all B*D views (what the paper and the official code do). With
``per_image_weight=True`` each image's views are averaged first and then the images: every image weighs
the same. With a fixed D the two are identical; they differ when images have different numbers of views
(pass ``duplicates`` as a tensor of per-image view counts, e.g. when a rank's shard of B*D is not a
multiple of D) or when image ``weights`` are given.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mixsize_ray.errors import ConfigError

__all__ = ["batch_augmentation_loss"]


def batch_augmentation_loss(
    logits: Tensor,
    targets: Tensor,
    duplicates: int | Tensor = 1,
    per_image_weight: bool = False,
    label_smoothing: float = 0.0,
    weights: Tensor | None = None,
) -> Tensor:
    """Cross-entropy of ``logits`` against ``targets`` over B images with D views each; a scalar.

    Args:
        logits: ``[B*D, K]`` float.
        targets: ``[B*D]`` class indices (int64), or ``[B*D, K]`` class probabilities.
        duplicates: D, an int >= 1 (every image has D consecutive rows), or a ``[B]`` integer tensor of
            per-image view counts summing to ``B*D`` rows (ragged views).
        per_image_weight: average each image's views first, then the images (equal weight per image).
            Default False: plain mean over rows (each view weighs the same).
        label_smoothing: in [0, 1), passed to ``F.cross_entropy``; default 0.
        weights: optional ``[B]`` non-negative image weights (implies per-image averaging); the result is
            ``sum_i w_i * mean_v loss(i, v) / sum_i w_i``.

    Returns:
        0-dim tensor (differentiable).

    Example:
        >>> logits = torch.zeros(6, 3); targets = torch.tensor([0, 0, 1, 1, 2, 2])   # B=3 images, D=2 views
        >>> round(batch_augmentation_loss(logits, targets, duplicates=2).item(), 4)   # log(3)
        1.0986
    """
    if logits.dim() != 2:
        raise ConfigError("logits", "a [B*D, K] tensor", tuple(logits.shape))
    n = logits.shape[0]
    if targets.shape[0] != n:
        raise ConfigError("targets", f"{n} rows like logits", tuple(targets.shape))
    if not (0.0 <= label_smoothing < 1.0):
        raise ConfigError("label_smoothing", "a number in [0, 1)", label_smoothing)

    if isinstance(duplicates, Tensor):
        counts = duplicates.to(device=logits.device, dtype=torch.long).flatten()
        if counts.numel() == 0 or bool((counts < 1).any()) or int(counts.sum()) != n:
            raise ConfigError(
                "duplicates", f"per-image view counts >= 1 summing to {n} rows", counts.tolist()
            )
        uniform_d = None
    else:
        if (
            isinstance(duplicates, bool)
            or not isinstance(duplicates, int)
            or duplicates < 1
            or n % duplicates
        ):
            raise ConfigError("duplicates", f"an integer >= 1 dividing the {n} rows", duplicates)
        counts = None
        uniform_d = duplicates
    num_images = counts.numel() if counts is not None else n // uniform_d  # type: ignore[operator]
    if weights is not None:
        weights = weights.to(device=logits.device, dtype=logits.dtype).flatten()
        if weights.numel() != num_images or bool((weights < 0).any()) or not bool(weights.sum() > 0):
            raise ConfigError(
                "weights",
                f"{num_images} non-negative image weights with a positive sum",
                tuple(weights.shape),
            )

    if not per_image_weight and weights is None:
        return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)

    per_row = F.cross_entropy(logits, targets, label_smoothing=label_smoothing, reduction="none")
    if uniform_d is not None:
        per_image = per_row.view(num_images, uniform_d).mean(dim=1)
    else:
        owner = torch.repeat_interleave(torch.arange(num_images, device=logits.device), counts)
        sums = torch.zeros(num_images, dtype=per_row.dtype, device=per_row.device).index_add_(
            0, owner, per_row
        )
        per_image = sums / counts.to(per_row.dtype)  # type: ignore[union-attr]
    if weights is None:
        return per_image.mean()
    return (per_image * weights).sum() / weights.sum()
