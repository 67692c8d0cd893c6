"""Per-size transforms: output shapes, the 8/7 evaluation resize, augmentation randomness, normalisation."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from mixsize_ray.data.presets import DataPreset
from mixsize_ray.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PadRandomCrop,
    size_transform,
)
from mixsize_ray.errors import ConfigError


def _rand_image(h, w, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _denorm(x, mean, std):
    return x * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)


@pytest.mark.parametrize("size", [16, 24, 32, 64, 96])
@pytest.mark.parametrize("train", [True, False])
def test_cifar_style_shapes(size, train):
    out = size_transform("cifar", size, 64, train=train)(_rand_image(64, 64))
    assert type(out) is torch.Tensor and out.dtype == torch.float32 and out.shape == (3, size, size)


@pytest.mark.parametrize("size", [32, 56, 128, 224])
@pytest.mark.parametrize("train", [True, False])
def test_imagenet_style_shapes(size, train):
    out = size_transform("imagenet", size, train=train)(_rand_image(300, 400))
    assert type(out) is torch.Tensor and out.shape == (3, size, size)


def test_imagenet_eval_resizes_to_8_7_then_center_crops():
    # 64x64: green centre, a 4 px red frame. S=56: resize to round(8/7*56) = 64 (identity), crop 56 drops the frame.
    arr = np.zeros((64, 64, 3), dtype=np.uint8)
    arr[..., 0] = 255
    arr[4:60, 4:60] = (0, 255, 0)
    out = _denorm(size_transform("imagenet", 56, train=False)(Image.fromarray(arr)), IMAGENET_MEAN, IMAGENET_STD)
    assert out.shape == (3, 56, 56)
    assert torch.allclose(out[1], torch.ones(56, 56), atol=1e-5) and out[0].abs().max() < 1e-5
    # S=28 from a 64 image: short side -> 32, so the crop keeps 28/32 of the width, not the whole image
    wide = np.zeros((64, 64, 3), dtype=np.uint8)
    wide[:, :4] = 255  # white band on the left 1/16 of the image
    out = _denorm(size_transform("imagenet", 28, train=False)(Image.fromarray(wide)), IMAGENET_MEAN, IMAGENET_STD)
    assert out[:, :, 0].max() < 0.2  # cropped away by the 8/7 center crop


def test_cifar_eval_keeps_the_whole_image():
    arr = np.zeros((32, 32, 3), dtype=np.uint8)
    arr[:, :4] = 255
    out = _denorm(
        size_transform("cifar", 16, 32, train=False, mean=(0, 0, 0), std=(1, 1, 1))(Image.fromarray(arr)),
        (0,) * 3,
        (1,) * 3,
    )
    assert out.shape == (3, 16, 16) and out[:, :, 0].min() > 0.9 and out[:, :, 4:].max() < 0.1


def test_cifar_train_at_native_size_is_a_shifted_or_flipped_crop():
    img = _rand_image(32, 32, seed=1)
    ident = dict(mean=(0, 0, 0), std=(1, 1, 1))
    src = torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255
    t = size_transform("cifar", 32, 32, train=True, **ident)
    torch.manual_seed(0)
    outs = [t(img) for _ in range(8)]
    assert len({o.numpy().tobytes() for o in outs}) > 1  # random
    padded = torch.nn.functional.pad(src, (4, 4, 4, 4))
    for o in outs:  # each output is a 32x32 window of the zero-padded source, possibly mirrored
        found = any(
            torch.allclose(cand, padded[:, r : r + 32, c : c + 32], atol=1e-6)
            for cand in (o, o.flip(-1))
            for r in range(9)
            for c in range(9)
        )
        assert found


def test_train_transform_is_seeded_by_torch():
    t = size_transform("imagenet", 32, train=True)
    img = _rand_image(80, 90)
    torch.manual_seed(3)
    a = t(img)
    torch.manual_seed(3)
    b = t(img)
    assert torch.equal(a, b)


def test_pad_random_crop_to_native():
    out = PadRandomCrop(4, crop=32)(Image.new("RGB", (40, 40)))
    assert out.size == (32, 32)


def test_size_transforms_factory_is_picklable_and_per_dataset():
    preset = DataPreset.for_dataset("shapes")
    assert (preset.style, preset.native, preset.mean, preset.std) == ("cifar", 64, (0.5,) * 3, (0.22,) * 3)
    f = pickle.loads(pickle.dumps(preset.transforms(train=True)))
    assert f(24)(_rand_image(64, 64)).shape == (3, 24, 24) and "PadRandomCrop" in repr(f(24))
    ev = DataPreset.for_dataset("imagefolder").transforms(train=False)
    assert ev(40)(_rand_image(100, 120)).shape == (3, 40, 40) and "CenterCrop" in repr(ev(40))
    assert DataPreset("cifar", 32).transforms(train=False)(16)(_rand_image(32, 32)).shape == (3, 16, 16)


def test_one_definition_of_each_normalisation():
    from mixsize_ray.data import transforms as tf
    from mixsize_ray.data.datasets import normalization

    assert normalization("cifar10") == (tf.CIFAR10_MEAN, tf.CIFAR10_STD)
    assert normalization("cifar100") == (tf.CIFAR100_MEAN, tf.CIFAR100_STD)
    assert normalization("imagefolder") == (tf.IMAGENET_MEAN, tf.IMAGENET_STD) == ((0.485, 0.456, 0.406),
                                                                                 (0.229, 0.224, 0.225))
    assert normalization("shapes") == (tf.SHAPES_MEAN, tf.SHAPES_STD) == ((0.5,) * 3, (0.22,) * 3)
    # mean/std None: the style's default (CIFAR-10 for cifar, ImageNet for imagenet)
    white = Image.new("RGB", (32, 32), (255, 255, 255))
    out = size_transform("cifar", 32, train=False)(white)
    torch.testing.assert_close(out[:, 0, 0], (1 - torch.tensor(tf.CIFAR10_MEAN)) / torch.tensor(tf.CIFAR10_STD))


@pytest.mark.parametrize("style, size", [("tiny", 32), ("cifar", 0), ("cifar", 2.5), ("imagenet", True)])
def test_invalid_arguments(style, size):
    with pytest.raises(ConfigError):
        size_transform(style, size, 32, train=True)
    with pytest.raises(ConfigError):
        size_transform(style, size, 32, train=False)


@pytest.mark.parametrize("size, side", [(32, 36), (96, 109), (160, 182), (224, 256), (256, 292)])
def test_eval_resize_side_truncates_8_7_like_the_official_code(size, side):
    from mixsize_ray.data.transforms import eval_resize_side

    assert eval_resize_side(size) == side  # int(8/7*S); round() gives 37, 110, 183 at 32, 96, 160


@pytest.mark.parametrize("size", [32, 96, 160])
def test_imagenet_eval_uses_int_8_7_short_side(size):
    """The transform itself: a 300x400 image resized to int(8/7*S) on the short side, then center crop S."""
    from torchvision.transforms import InterpolationMode, v2

    img = _rand_image(300, 400)
    side = int(size * 8 / 7)
    want = v2.Compose([v2.Resize(side, interpolation=InterpolationMode.BILINEAR, antialias=True),
                       v2.CenterCrop(size), v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD))])(img)
    torch.testing.assert_close(size_transform("imagenet", size, train=False)(img), want)


def test_shared_crop_gives_each_sizes_own_augmentation_from_one_draw():
    """Same RNG state: SharedCrop's output at S equals size_transform(S, train=True)'s, at every S, so
    each size keeps RandomResizedCrop(S) + flip's distribution; the crop and flip are drawn once."""
    import numpy as np
    from PIL import Image

    from mixsize_ray.data.transforms import SharedCrop

    img = Image.fromarray((np.random.default_rng(0).random((48, 72, 3)) * 255).astype("uint8"))
    for seed in range(4):  # both flip outcomes among them
        torch.manual_seed(seed)
        shared = SharedCrop([16, 32, 56])(img)
        state_after = torch.get_rng_state()
        for s, x in zip([16, 32, 56], shared, strict=True):
            torch.manual_seed(seed)
            assert torch.equal(x, size_transform("imagenet", s, train=True)(img))
            assert torch.equal(torch.get_rng_state(), state_after)  # the same random numbers consumed
