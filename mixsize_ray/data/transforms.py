"""Per-size transform presets: PIL image in, pixels ``[3, S, S]`` (or normalised float) out.

Two styles:

* ``"cifar"`` (shapes, CIFAR): train = pad 4 + random crop back to the native side + horizontal flip, then a
  bilinear anti-aliased resize native -> S; eval = the same resize native -> S (as in training, no crop).
* ``"imagenet"`` (ImageFolder): train = ``RandomResizedCrop(S)`` + flip; eval = resize the short side to
  ``int(8/7 * S)`` then center crop S (the official MixSize evaluation: convNet.pytorch ``preprocess.py``
  ``scale_size = scale_size or int(input_size * 8/7)``; 256 at 224, 36 at 32, 109 at 96, 182 at 160).

:func:`pixel_transform` builds either up to the pixels: uint8 ``[3, S, S]`` in ImageNet style (every operation
runs on the decoded uint8 image), float in [0, 1] in CIFAR style (its resize runs on floats). The loaders send
those pixels as they are and the device normalises them (:class:`Normalization`,
:class:`mixsize_ray.data.device_inputs.DeviceInputs`): a quarter of the bytes in ImageNet style.
:func:`size_transform` is the pixels followed by the same :class:`Normalization`, in one process, bit-identical.
:class:`mixsize_ray.data.presets.DataPreset` holds a dataset's style, native side and normalisation and builds the
loaders from it. The per-dataset normalisation constants are defined here, once.

Example:
    >>> from PIL import Image
    >>> t = size_transform("cifar", 24, native=32, train=True)
    >>> t(Image.new("RGB", (32, 32))).shape
    torch.Size([3, 24, 24])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as TF

from mixsize_ray.core.choices import STYLES
from mixsize_ray.data.jpeg_draft import (
    DraftRandomResizedCrop,
    DraftResize,
    coarsest_scale,
    is_lazy_jpeg,
    resized_region,
)
from mixsize_ray.errors import ConfigError

# per-channel normalisation (mean, std) of RGB in [0, 1]
CIFAR10_MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
CIFAR10_STD: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN: tuple[float, float, float] = (0.5071, 0.4865, 0.4409)
CIFAR100_STD: tuple[float, float, float] = (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
SHAPES_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)  # measured on generated data
SHAPES_STD: tuple[float, float, float] = (0.22, 0.22, 0.22)
_DEFAULT_NORM = {"cifar": (CIFAR10_MEAN, CIFAR10_STD), "imagenet": (IMAGENET_MEAN, IMAGENET_STD)}

CIFAR_PADDING = 4
"""Zero padding (pixels, at native resolution) of the CIFAR-style random crop."""

EVAL_RESIZE_RATIO = 8 / 7
"""ImageNet-style evaluation resizes the short side to ``int(EVAL_RESIZE_RATIO * S)`` before the center crop."""


def eval_resize_side(size: int) -> int:
    """The short side an ImageNet-style evaluation at ``size`` resizes to: ``int(8/7 * size)`` (truncation, as
    the official convNet.pytorch ``preprocess.py``; ``round`` differs at 32, 96, 160 and 256).

    Example:
        >>> [eval_resize_side(s) for s in (32, 96, 160, 224, 256)]
        [36, 109, 182, 256, 292]
    """
    return int(size * EVAL_RESIZE_RATIO)


class PadRandomCrop:
    """Zero-pad by ``padding`` then crop a random ``crop x crop`` window (default: the input's own size).

    Works on PIL images and tensors ``[..., H, W]``; the offset comes from torch's global RNG, which the
    training loader seeds per step (:class:`mixsize_ray.data.loader.StepItems`).

    Example:
        >>> from PIL import Image
        >>> PadRandomCrop(4, crop=32)(Image.new("RGB", (40, 40))).size
        (32, 32)
    """

    def __init__(self, padding: int = CIFAR_PADDING, crop: int | None = None) -> None:
        self.padding = int(padding)
        self.crop = crop

    def __call__(self, img: Any) -> Any:
        h, w = TF.get_size(img)
        ch, cw = (h, w) if self.crop is None else (self.crop, self.crop)
        img = TF.pad(img, [self.padding])
        top = int(torch.randint(0, h + 2 * self.padding - ch + 1, ()))
        left = int(torch.randint(0, w + 2 * self.padding - cw + 1, ()))
        return TF.crop(img, top, left, ch, cw)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(padding={self.padding}, crop={self.crop})"


def _check(style: str, size: int) -> None:
    if style not in STYLES:
        raise ConfigError("data.style", f"one of {list(STYLES)}", style)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ConfigError("size", "an int >= 1 (pixels)", size)


@dataclass(frozen=True)
class Normalization:
    """Pixels ``[..., 3, H, W]`` (uint8 in 0..255 or float in [0, 1], any device, any memory format) ->
    float32 ``(x - mean) / std``: torchvision's ``to_dtype(float32, scale=True)`` then ``normalize``, the very
    kernels :func:`size_transform` ends with, so normalising a batch on the device equals normalising each
    image in the loader, bit for bit.

    Example:
        >>> n = Normalization.of("imagenet")
        >>> x = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
        >>> n(x).shape, round(float(n(x)[0, 0, 0, 0]), 4)  # (1 - 0.485) / 0.229
        (torch.Size([2, 3, 4, 4]), 2.2489)
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, style: str, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> Normalization:
        """``mean``/``std`` given, else the style's default (CIFAR-10's or ImageNet's)."""
        d_mean, d_std = _DEFAULT_NORM[style]
        return cls(tuple(float(v) for v in (mean if mean is not None else d_mean)),
                   tuple(float(v) for v in (std if std is not None else d_std)))

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        return TF.normalize(TF.to_dtype(pixels, torch.float32, scale=True), list(self.mean), list(self.std))


def _to_float() -> list[Any]:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]


def pixel_transform(style: str, size: int, native: int | None = None, *, train: bool) -> Callable[[Any], torch.Tensor]:
    """The transform of one size up to the pixels: PIL image in, ``[3, size, size]`` out, uint8 in ImageNet
    style, float in [0, 1] in CIFAR style (whose resize runs on floats). :func:`size_transform` is this then
    :class:`Normalization`; see it for the operations.

    Example:
        >>> from PIL import Image
        >>> x = pixel_transform("imagenet", 56, train=False)(Image.new("RGB", (80, 64), (255, 0, 0)))
        >>> x.shape, x.dtype, int(x[0, 0, 0])
        (torch.Size([3, 56, 56]), torch.uint8, 255)
    """
    _check(style, size)
    resize = v2.Resize((size, size), interpolation=InterpolationMode.BILINEAR, antialias=True)
    if style == "cifar" and train:
        ops = [PadRandomCrop(CIFAR_PADDING, native), v2.RandomHorizontalFlip(), *_to_float(), resize]
    elif style == "cifar":
        ops = [*_to_float(), resize]
    elif train:  # RandomResizedCrop, decoding a lazy JPEG at reduced scale where the box allows
        ops = [DraftRandomResizedCrop(size), v2.RandomHorizontalFlip(), v2.ToImage()]
    else:  # Resize of the short side, decoding a lazy JPEG at reduced scale where the short side allows
        ops = [DraftResize(eval_resize_side(size)), v2.CenterCrop(size), v2.ToImage()]
    return v2.Compose([*ops, v2.ToPureTensor()])


def size_transform(
    style: str,
    size: int,
    native: int | None = None,
    *,
    train: bool,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Callable[[Any], torch.Tensor]:
    """The transform of one size: PIL image in, normalised float tensor ``[3, size, size]`` out.

    ``train=True`` gives the random training augmentation; CIFAR style: pad 4 + random crop back to
    ``native`` + flip, then an antialiased bilinear resize to ``size``; ImageNet style: ``RandomResizedCrop``
    + flip. ``train=False`` gives the deterministic evaluation transform; CIFAR style: the training resize
    of the whole (native) image; ImageNet style: resize the short side to ``int(8/7 * size)``, center crop.
    ImageNet style decodes a lazy JPEG (:func:`mixsize_ray.data.jpeg_draft.open_image`) at 1/2, 1/4 or 1/8
    where the crop or the short side keeps at least the output's pixels (:mod:`mixsize_ray.data.jpeg_draft`);
    any other image gives the full-decode pixels, the random draws are the same either way.

    Args:
        style: ``"cifar"`` or ``"imagenet"``.
        size: output side S in pixels.
        native: CIFAR-style training: side of the random crop before the resize (64 for shapes, 32 for
            CIFAR); None crops back to each input's own side. Not used otherwise.
        mean, std: per-channel normalisation; None uses CIFAR-10 statistics (cifar) or ImageNet's (imagenet).
            :func:`mixsize_ray.data.datasets.normalization` gives a dataset's own.

    Example:
        >>> from PIL import Image
        >>> size_transform("imagenet", 56, train=False)(Image.new("RGB", (80, 64))).shape
        torch.Size([3, 56, 56])
    """
    return v2.Compose([pixel_transform(style, size, native, train=train), Normalization.of(style, mean, std)])


class SharedCrop:
    """ImageNet-style training augmentation at several sizes from ONE crop and flip per image: PIL image in,
    one normalised float tensor ``[3, S, S]`` per size of ``sizes`` out (a list, in ``sizes`` order).

    ``RandomResizedCrop``'s box and the flip are drawn once (torch's RNG, scale (0.08, 1), ratio (3/4, 4/3):
    torchvision's defaults, as :func:`size_transform` uses), then the box is resized to every size. Each
    size's output is distributed exactly as :func:`size_transform` ``(S, train=True)``'s; what one pass
    saves is the decoding and cropping of the image once per size. BN calibration of a whole sweep reads the
    data once through it (:meth:`mixsize_ray.data.presets.CalibrationSource.together`). A lazy JPEG is
    decoded once, at the reduced scale the LARGEST size allows (:mod:`mixsize_ray.data.jpeg_draft`): the
    largest size's output equals :func:`size_transform`'s; a smaller one may come from a finer decode than
    its own transform would pick (same box, a finer source).

    Example:
        >>> from PIL import Image
        >>> out = SharedCrop([16, 32])(Image.new("RGB", (80, 64)))
        >>> [x.shape for x in out]
        [torch.Size([3, 16, 16]), torch.Size([3, 32, 32])]
    """

    SCALE = (0.08, 1.0)
    RATIO = (3 / 4, 4 / 3)

    def __init__(self, sizes: Sequence[int], mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> None:
        for s in sizes:
            _check("imagenet", s)
        self.sizes = list(sizes)
        self.finish = v2.Compose([*_to_float(), v2.ToPureTensor(), Normalization.of("imagenet", mean, std)])

    def __call__(self, img: Any) -> list[torch.Tensor]:
        from torchvision.transforms import RandomResizedCrop

        top, left, height, width = RandomResizedCrop.get_params(img, list(self.SCALE), list(self.RATIO))
        flip = bool(torch.rand(1) < 0.5)
        box = (left, top, left + width, top + height)
        largest = max(self.sizes)
        scale = coarsest_scale((width, height), (largest, largest)) if is_lazy_jpeg(img) else 1
        out = []
        for s in self.sizes:
            x = resized_region(img, box, (s, s), scale)
            out.append(self.finish(TF.horizontal_flip(x) if flip else x))
        return out


class EvalViews:
    """The evaluation pixels at several sizes from ONE decoded image: image in, one ``[3, S, S]`` pixel tensor
    per size of ``sizes`` out (a list, in ``sizes`` order), each bit-identical to :func:`pixel_transform`
    ``(style, S, native, train=False)``'s (normalised: :func:`size_transform`'s). A size sweep reads the
    evaluation split once through it (:meth:`mixsize_ray.data.eval_source.EvalSource.together`) instead of
    once per size. A lazy JPEG is decoded once per distinct reduced scale among the sizes (the decodes are
    cached on the image, :func:`mixsize_ray.data.jpeg_draft.decode`), each size still bit-identical to its
    own transform.

    Example:
        >>> from PIL import Image
        >>> img = Image.new("RGB", (80, 64), (200, 30, 90))
        >>> views = EvalViews("imagenet", [16, 32])(img)
        >>> [x.shape[-1] for x in views], torch.equal(views[1], pixel_transform("imagenet", 32, train=False)(img))
        ([16, 32], True)
    """

    def __init__(self, style: str, sizes: Sequence[int], native: int | None = None) -> None:
        self.sizes = list(sizes)
        self.per_size = [pixel_transform(style, s, native, train=False) for s in self.sizes]

    def __call__(self, img: Any) -> list[torch.Tensor]:
        return [t(img) for t in self.per_size]
