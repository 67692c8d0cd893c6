"""An evaluation split's shard per rank, read at one size or at every size in one pass (EvalSource), and the
evaluation transform at several sizes from one decode (EvalViews)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mixsize_ray.data.datasets import build_dataset
from mixsize_ray.data.eval_source import EvalSource, together_batch_size
from mixsize_ray.data.loader import LoaderWorkers
from mixsize_ray.data.presets import DataPreset
from mixsize_ray.data.transforms import EvalViews, Normalization, pixel_transform, size_transform
from mixsize_ray.errors import ConfigError


@pytest.fixture
def photos():
    """ImageFolder-like (PIL photo, label) items of mixed shapes: what ImageNet-style evaluation reads."""
    rng = np.random.default_rng(0)
    sizes = [(500, 375), (333, 501), (64, 64), (120, 90), (97, 211)]
    return [(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)), i % 3)
            for i, (w, h) in enumerate(sizes * 3)]


@pytest.mark.parametrize("style", ["imagenet", "cifar"])
def test_views_equal_the_per_size_transform_bit_for_bit(photos, style):
    sizes = [32, 56, 96]
    views = EvalViews(style, sizes)
    norm = Normalization.of(style)
    for img, _ in photos[:5]:
        for s, x in zip(sizes, views(img), strict=True):
            assert torch.equal(x, pixel_transform(style, s, train=False)(img))
            assert torch.equal(norm(x), size_transform(style, s, train=False)(img))


@pytest.mark.parametrize("workers", [0, 1])
def test_device_normalised_batches_equal_the_per_image_transform(photos, workers):
    """The loader sends uint8 channels_last pixels (a quarter of float32's bytes); what comes out of the
    source, normalised where the model runs, is bit-identical to the per-image normalised transform."""
    preset = DataPreset("imagenet", mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))
    source = EvalSource(preset, photos, batch_size=4, workers=LoaderWorkers(workers))
    pixels, _ = next(iter(source.pixels(48)))
    assert pixels.dtype == torch.uint8 and pixels.is_contiguous(memory_format=torch.channels_last)
    ours = torch.cat([x for x, _ in source(48)])
    host = torch.cat([x for x, _ in preset.eval_loader(photos, 48, batch_size=4)])
    assert ours.dtype == torch.float32 and ours.is_contiguous() and torch.equal(ours, host)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_shards_cover_every_image_exactly_once(photos, world):
    preset = DataPreset("imagenet")
    seen = []
    for rank in range(world):
        source = EvalSource(preset, photos, batch_size=4, rank=rank, world_size=world)
        seen += [int(y) for _, ys in source(32) for y in ys]
        assert len(source.shard) == len(range(rank, len(photos), world))
    assert sorted(seen) == sorted(label for _, label in photos)  # 15 images, none padded or dropped


def test_one_pass_yields_what_each_size_yields(photos):
    preset = DataPreset("imagenet")
    source = EvalSource(preset, photos, batch_size=6, rank=1, world_size=2, workers=LoaderWorkers(1))
    sizes = [32, 48, 64]
    together: dict[int, list[torch.Tensor]] = {s: [] for s in sizes}
    targets = []
    for views, y in source.together(sizes):
        assert sorted(views) == sizes
        for s in sizes:
            together[s].append(views[s])
        targets.append(y)
    for s in sizes:
        alone = list(source(s))
        assert torch.equal(torch.cat(together[s]), torch.cat([x for x, _ in alone]))
        assert torch.equal(torch.cat(targets), torch.cat([y for _, y in alone]))


def test_together_batches_hold_one_largest_batch_of_pixels():
    assert together_batch_size(256, [224]) == 256
    assert together_batch_size(256, [112, 224]) == 256 * 224**2 // (112**2 + 224**2) == 204
    assert together_batch_size(1, [16, 32, 64]) == 1


def test_bad_batch_size_and_rank_are_refused():
    shapes = build_dataset("shapes", None, "test", size=4)
    with pytest.raises(ConfigError, match="train.eval_batch_size"):
        EvalSource(DataPreset.for_dataset("shapes"), shapes, batch_size=0)
    with pytest.raises(ConfigError, match="rank"):
        EvalSource(DataPreset.for_dataset("shapes"), shapes, batch_size=2, rank=2, world_size=2)
