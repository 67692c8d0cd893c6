"""Batch-augmentation loss: mean over B*D views, per-image weighting, ragged views, validation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mixsize_ray.core.loss import batch_augmentation_loss
from mixsize_ray.errors import ConfigError


def data(b: int, d: int, k: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b * d, k, generator=g) * 3
    targets = torch.randint(0, k, (b,), generator=g).repeat_interleave(d)  # sample-major layout
    return logits, targets


@pytest.mark.parametrize("b,d", [(1, 1), (5, 1), (4, 3), (2, 8)])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_equals_cross_entropy_mean_over_rows(b, d, smoothing):
    logits, targets = data(b, d)
    got = batch_augmentation_loss(logits, targets, duplicates=d, label_smoothing=smoothing)
    torch.testing.assert_close(got, F.cross_entropy(logits, targets, label_smoothing=smoothing))
    # with a fixed D, per-image weighting gives the same number
    per_image = batch_augmentation_loss(logits, targets, d, per_image_weight=True, label_smoothing=smoothing)
    torch.testing.assert_close(per_image, got)


def test_per_image_weighting_by_hand_with_ragged_views():
    logits, _ = data(1, 6, seed=3)
    targets = torch.tensor([0, 0, 0, 1, 2, 2])
    counts = torch.tensor([3, 1, 2])  # image 0 has 3 views, image 1 one, image 2 two
    rows = [F.cross_entropy(logits[i : i + 1], targets[i : i + 1]).item() for i in range(6)]
    hand = ((rows[0] + rows[1] + rows[2]) / 3 + rows[3] + (rows[4] + rows[5]) / 2) / 3
    got = batch_augmentation_loss(logits, targets, counts, per_image_weight=True)
    assert got.item() == pytest.approx(hand, rel=1e-6)
    # without per-image weighting every view weighs the same, which differs here
    plain = batch_augmentation_loss(logits, targets, counts)
    assert plain.item() == pytest.approx(sum(rows) / 6, rel=1e-6)
    assert abs(plain.item() - hand) > 1e-3


def test_image_weights_by_hand():
    logits, targets = data(3, 2, seed=5)
    w = torch.tensor([1.0, 0.0, 3.0])
    rows = F.cross_entropy(logits, targets, reduction="none")
    per_image = rows.view(3, 2).mean(1)
    hand = (per_image[0] * 1 + per_image[2] * 3) / 4
    torch.testing.assert_close(batch_augmentation_loss(logits, targets, 2, weights=w), hand)


def test_layout_is_sample_major():
    # two images, two views; image 1's views are badly wrong: per-image means must group rows (0,1) and (2,3)
    logits = torch.tensor([[5.0, 0.0], [5.0, 0.0], [0.0, 5.0], [5.0, 0.0]])
    targets = torch.tensor([0, 0, 1, 1])
    w = torch.tensor([1.0, 0.0])  # only image 0 counts -> both its views are right -> tiny loss
    assert batch_augmentation_loss(logits, targets, 2, weights=w).item() < 0.01


def test_gradients_flow():
    logits, targets = data(2, 2)
    logits.requires_grad_(True)
    batch_augmentation_loss(logits, targets, 2, per_image_weight=True).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"duplicates": 0}, "duplicates"),
        ({"duplicates": 5}, "duplicates"),  # 12 rows not divisible by 5
        ({"duplicates": True}, "duplicates"),
        ({"duplicates": torch.tensor([6, 5])}, "duplicates"),
        ({"duplicates": torch.tensor([12, 0])}, "duplicates"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"duplicates": 3, "weights": torch.ones(3)}, "weights"),
        ({"duplicates": 3, "weights": torch.tensor([1.0, -1.0, 1.0, 1.0])}, "weights"),
    ],
)
def test_invalid_inputs(kwargs, field):
    logits, targets = data(4, 3)
    with pytest.raises(ConfigError, match=field):
        batch_augmentation_loss(logits, targets, **kwargs)


def test_shape_mismatch():
    logits, targets = data(4, 3)
    with pytest.raises(ConfigError, match="targets"):
        batch_augmentation_loss(logits, targets[:-1], 3)
    with pytest.raises(ConfigError, match="logits"):
        batch_augmentation_loss(logits[None], targets, 3)
