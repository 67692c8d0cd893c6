"""JPEG decoding at reduced scale where it is free: libjpeg's DCT scaling (PIL ``Image.draft``) at 1/2, 1/4 or
1/8 whenever the region a transform keeps still has at least the output's pixels after the reduction.

The ImageFolder loader (:func:`open_image`) returns an RGB JPEG LAZILY: a PIL image read from the file's bytes in
memory, header parsed (``size`` known), pixels not decoded, no file handle held. The ImageNet-style transforms
(:class:`DraftRandomResizedCrop`, :class:`DraftResize`) and :class:`~mixsize_ray.data.transforms.SharedCrop`
draw their geometry from the header size, exactly as on the full image (same torch RNG draws), then call
:func:`resized_region`: decode at the coarsest scale ``s`` in (8, 4, 2) whose reduced region is still at least
the output size in both axes (:func:`coarsest_scale`), and resample the region's exact box in reduced
coordinates (``box / s``: reduced pixel ``k`` is the mean of original pixels ``[s*k, s*k + s)``). Where no
scale fits, or the image is not a lazy JPEG (PNG, greyscale/CMYK JPEG, an image already decoded), the full
decode and torchvision's own kernels give today's pixels bit for bit.

Decodes are cached per scale on the lazy image (:func:`decode`), so the D views of one sample, or the eval
views of one image at several sizes, decode once per distinct scale; the lazy image itself is never mutated.

Example:
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (2000, 1500), "gray").save(buf, "JPEG")
    >>> img = Image.open(buf)                      # lazy: header read, nothing decoded
    >>> region = resized_region(img, (0, 0, 2000, 1500), (341, 256))  # eval at 224: short side 256
    >>> region.size, sorted(decoded_scales(img))   # decoded at 1/4 (500x375), not 2000x1500
    ((341, 256), [4])
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as TF

DRAFT_SCALES: tuple[int, ...] = (8, 4, 2)
"""The reduction factors libjpeg's DCT scaling offers PIL's ``draft``, coarsest first (1 = the full decode)."""

_CACHE = "_mixsize_draft_decodes"  # attribute of a lazy image: {scale: decoded RGB image}

Box = tuple[int, int, int, int]
"""``(left, top, right, bottom)`` in the ORIGINAL image's pixels (right and bottom exclusive)."""


class CorruptImageError(ValueError):
    """An image file that PIL cannot decode; the message starts with the file's path.

    A plain one-message exception, so it crosses DataLoader worker processes with its type intact.
    """


def _corrupt(path: Any, err: Exception) -> CorruptImageError:
    return CorruptImageError(f"{path}: cannot decode image ({type(err).__name__}: {err}); delete or replace this file")


_DECODE_ERRORS = (OSError, SyntaxError, ValueError)  # PIL.UnidentifiedImageError is an OSError


def open_image(path: str | Path, lazy: bool = True) -> Image.Image:
    """The ImageFolder loader: ``path`` as a PIL image of mode RGB.

    An RGB JPEG with ``lazy=True`` comes back undecoded (``size`` from the header; ``filename`` is ``path``),
    read from an in-memory copy of the file so no file handle stays open; any PIL operation decodes it in
    full, the draft-aware transforms at reduced scale. Every other image (PNG, greyscale or CMYK JPEG, or any
    image with ``lazy=False``) is decoded to RGB now, as ``Image.open(path).convert("RGB")``.

    Raises:
        CorruptImageError: the file is unreadable (naming it); a lazy JPEG whose body is truncated raises it
            when decoded (:func:`decode`).

    Example:
        >>> import tempfile
        >>> path = tempfile.mktemp(suffix=".JPEG"); Image.new("RGB", (64, 48)).save(path)
        >>> img = open_image(path)
        >>> img.size, img.mode, is_lazy_jpeg(img), is_lazy_jpeg(open_image(path, lazy=False))
        ((64, 48), 'RGB', True, False)
    """
    try:
        with open(path, "rb") as f:
            img = Image.open(io.BytesIO(f.read()))
        if lazy and img.format == "JPEG" and img.mode == "RGB":
            img.filename = str(path)
            return img
        return img.convert("RGB")  # forces the full decode, so truncated files fail here
    except _DECODE_ERRORS as err:
        raise _corrupt(path, err) from err


def is_lazy_jpeg(img: Any) -> bool:
    """Whether ``img`` is a JPEG opened but not yet decoded (nor drafted), which :func:`decode` can reduce."""
    return (isinstance(img, Image.Image) and img.format == "JPEG" and bool(getattr(img, "tile", None))
            and not getattr(img, "decoderconfig", ()))


def coarsest_scale(region: tuple[float, float], out: tuple[int, int], scales: Sequence[int] = DRAFT_SCALES) -> int:
    """The largest reduction ``s`` of ``scales`` (1 if none) with ``region / s >= out`` in both axes: the
    reduced region is still no smaller than the output, so nothing is upsampled that the full decode
    would downsample.

    Args:
        region: ``(width, height)`` of the region kept, in original pixels.
        out: ``(width, height)`` of the output.

    Example:
        >>> coarsest_scale((2000, 1500), (341, 256)), coarsest_scale((500, 375), (292, 219))
        (4, 1)
        >>> coarsest_scale((300, 260), (128, 128)), coarsest_scale((300, 250), (128, 128))
        (2, 1)
    """
    for s in scales:
        if region[0] >= s * out[0] and region[1] >= s * out[1]:
            return s
    return 1


def decode(img: Image.Image, scale: int = 1) -> Image.Image:
    """``img`` decoded to RGB at ``1/scale`` (each side ``ceil(side / scale)``), cached per scale on ``img``.

    A lazy JPEG (:func:`is_lazy_jpeg`) is decoded from a fresh open of its bytes (or of ``img.filename``),
    so ``img`` stays lazy and keeps its header size; any other image is returned as it is (``scale`` 1 only).

    Raises:
        CorruptImageError: the JPEG's body cannot be decoded (naming ``img.filename``).
    """
    if not is_lazy_jpeg(img):
        if scale != 1:
            raise ValueError(f"scale: 1 for an image that is not a lazy JPEG, got {scale}")
        return img
    cache = img.__dict__.setdefault(_CACHE, {})
    if scale not in cache:
        cache[scale] = _decode_fresh(img, scale)
    return cache[scale]


def decoded_scales(img: Image.Image) -> dict[int, tuple[int, int]]:
    """``{scale: decoded size}`` of the decodes :func:`decode` cached on ``img`` (empty if none)."""
    return {s: d.size for s, d in getattr(img, _CACHE, {}).items()}


def _decode_fresh(img: Image.Image, scale: int) -> Image.Image:
    fp = getattr(img, "fp", None)
    try:
        fresh = Image.open(io.BytesIO(fp.getvalue()) if isinstance(fp, io.BytesIO) else img.filename)
        try:
            if scale != 1:
                drafted = fresh.draft(None, (fresh.width // scale, fresh.height // scale))
                got = 1 if drafted is None else round(img.width / drafted[1][2])
                if got != scale:
                    raise ValueError(f"draft at 1/{scale} decoded at 1/{got}")
            fresh.load()  # closes a file PIL opened itself
        except BaseException:
            fresh.close()
            raise
        return fresh if fresh.mode == "RGB" else fresh.convert("RGB")
    except _DECODE_ERRORS as err:
        raise _corrupt(img.filename, err) from err


def resized_region(img: Image.Image, box: Box, out: tuple[int, int], scale: int | None = None) -> Image.Image:
    """The region ``box`` (original pixels) of ``img`` resampled to ``out = (width, height)``: PIL RGB.

    ``scale`` None picks :func:`coarsest_scale` of the box for ``out`` (1 unless ``img`` is a lazy JPEG). At
    scale 1 this is torchvision's ``resized_crop`` (crop, then PIL's antialiased bilinear resize) of the full
    decode, pixel for pixel; at scale ``s`` it is the same resize of the decode at ``1/s``, over the box
    ``box / s``, the same region in original coordinates.
    """
    left, top, right, bottom = box
    if scale is None:
        scale = coarsest_scale((right - left, bottom - top), out) if is_lazy_jpeg(img) else 1
    src = decode(img, scale)
    if scale == 1:
        return TF.resized_crop(src, top, left, bottom - top, right - left, [out[1], out[0]],
                               interpolation=InterpolationMode.BILINEAR, antialias=True)
    return src.resize(out, Image.Resampling.BILINEAR, box=(left / scale, top / scale, right / scale, bottom / scale))


def resized_short_side(width: int, height: int, side: int) -> tuple[int, int]:
    """``(width, height)`` after resizing the short side to ``side`` (the long one truncated), as
    torchvision's ``Resize(side)`` computes it.

    Example:
        >>> resized_short_side(500, 375, 256), resized_short_side(333, 501, 182)
        ((341, 256), (182, 273))
    """
    if width <= height:
        return side, int(side * height / width)
    return int(side * width / height), side


class DraftRandomResizedCrop(v2.RandomResizedCrop):
    """``v2.RandomResizedCrop`` (bilinear, antialiased) that decodes a lazy JPEG at reduced scale when the
    drawn box allows (:func:`resized_region`). The box comes from ``v2.RandomResizedCrop``'s own
    ``make_params`` on the header size: the same torch RNG draws, the same box in original coordinates.
    Tensors, and PIL images that are not lazy JPEGs, take torchvision's path unchanged.

    Example:
        >>> DraftRandomResizedCrop(32)(Image.new("RGB", (80, 64))).size
        (32, 32)
    """

    def __init__(self, size: int, **kwargs: Any) -> None:
        super().__init__(size, interpolation=InterpolationMode.BILINEAR, antialias=True, **kwargs)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not is_lazy_jpeg(inpt):
            return super().transform(inpt, params)
        top, left, h, w = params["top"], params["left"], params["height"], params["width"]
        out = (self.size[1], self.size[0])
        scale = coarsest_scale((w, h), out)
        if scale == 1:
            return super().transform(decode(inpt), params)
        return resized_region(inpt, (left, top, left + w, top + h), out, scale)


class DraftResize(v2.Resize):
    """``v2.Resize(side)`` of the short side (bilinear, antialiased) that decodes a lazy JPEG at the coarsest
    scale whose short side is still ``>= side`` (:func:`resized_region` over the whole image); every other
    input takes torchvision's path unchanged.

    Example:
        >>> DraftResize(36)(Image.new("RGB", (80, 64))).size
        (45, 36)
    """

    def __init__(self, side: int) -> None:
        super().__init__(side, interpolation=InterpolationMode.BILINEAR, antialias=True)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not is_lazy_jpeg(inpt):
            return super().transform(inpt, params)
        out = resized_short_side(inpt.width, inpt.height, self.size[0])
        scale = coarsest_scale(inpt.size, out)
        if scale == 1:
            return super().transform(decode(inpt), params)
        return resized_region(inpt, (0, 0, inpt.width, inpt.height), out, scale)
