"""Loader pixels become model inputs on the device: copied, normalised with the transform's own kernels, in the
model's memory format."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from mixsize_ray.data.device_inputs import DeviceInputs
from mixsize_ray.data.loader import stack_pixels
from mixsize_ray.data.transforms import Normalization, pixel_transform, size_transform


def _photos(n=6):
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 256, (90 + 7 * i, 120, 3), dtype=np.uint8)) for i in range(n)]


def test_batch_normalised_on_the_device_equals_each_image_normalised_in_the_loader():
    for style, train in (("imagenet", True), ("imagenet", False), ("cifar", True), ("cifar", False)):
        pix, full = pixel_transform(style, 40, 64, train=train), size_transform(style, 40, 64, train=train)
        imgs = [im.resize((64, 64)) if style == "cifar" else im for im in _photos()]
        torch.manual_seed(7)
        pixels = stack_pixels([pix(im) for im in imgs])
        torch.manual_seed(7)
        expected = torch.stack([full(im) for im in imgs])
        assert pixels.dtype == (torch.uint8 if style == "imagenet" else torch.float32)
        got = DeviceInputs(Normalization.of(style))(pixels)
        assert got.is_contiguous() and torch.equal(got, expected), (style, train)


def test_channels_last_inputs_keep_the_pixels_layout_and_bytes_are_a_quarter():
    pixels = stack_pixels([pixel_transform("imagenet", 32, train=False)(im) for im in _photos(3)])
    x = DeviceInputs(Normalization.of("imagenet"), "cpu", channels_last=True)(pixels)
    assert x.is_contiguous(memory_format=torch.channels_last) and x.dtype == torch.float32
    assert pixels.numel() * pixels.element_size() * 4 == x.numel() * x.element_size()  # uint8 vs float32
    assert DeviceInputs(Normalization.of("imagenet"), "cpu").pin_memory is False
    assert DeviceInputs(Normalization.of("imagenet"), "cuda").pin_memory is True
