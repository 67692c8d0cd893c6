"""ImageNet-shaped synthetic JPEGs in the ImageFolder layout the ``imagefolder`` dataset reads
(``ROOT/train/<class>/*.JPEG``, ``ROOT/val/<class>/*.JPEG``): what ``make gpu-check`` trains on, so that a
run decodes and augments real JPEG files as an ImageNet run does.

Each image is ``width x height`` (default 500 x 375, ImageNet's typical shape), RGB, quality 90: a smooth
random colour field (a 4 x 3 grid upsampled bicubically), one random ellipse and mild pixel noise, so a file
is tens of KB and decodes as a photo of that size does, not as flat colour (fast) or white noise (slow).
The pixels carry no signal to learn; only the cost of reading them matters.

Example:
    >>> import tempfile
    >>> from mixsize_ray.data.datasets import build_dataset
    >>> root = tempfile.mkdtemp()
    >>> spec = JpegSpec(classes=2, train_per_class=3, val_per_class=1)
    >>> write_imagefolder(root, spec) == spec, len(build_dataset("imagefolder", root, "train"))
    (True, 6)
    >>> build_dataset("imagefolder", root, "test")[0][0].size
    (500, 375)
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SPEC_JSON = "jpeg_spec.json"
NOISE_SIGMA = 10.0  # pixel noise (8-bit levels): ~60 KB files at 500 x 375, quality 90, ~2 ms to decode


@dataclass(frozen=True)
class JpegSpec:
    """What a folder holds: ``classes`` class folders with ``train_per_class`` / ``val_per_class`` images
    each, ``width`` x ``height`` px, JPEG ``quality``, drawn from ``seed``."""

    classes: int
    train_per_class: int
    val_per_class: int
    width: int = 500
    height: int = 375
    quality: int = 90
    seed: int = 0

    @property
    def train_images(self) -> int:
        return self.classes * self.train_per_class

    @property
    def val_images(self) -> int:
        return self.classes * self.val_per_class


@functools.cache
def _noise(spec: JpegSpec) -> np.ndarray:
    """One ``[2h, 2w, 3]`` noise texture per process; each image crops it at a random offset."""
    rng = np.random.default_rng([spec.seed, 7])
    return rng.normal(0, NOISE_SIGMA, (2 * spec.height, 2 * spec.width, 3)).astype(np.int16)


def _image(spec: JpegSpec, key: int) -> Image.Image:
    rng = np.random.default_rng([spec.seed, key])
    field = Image.fromarray(rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)).resize(
        (spec.width, spec.height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(field)
    x0, y0 = rng.integers(0, spec.width // 2), rng.integers(0, spec.height // 2)
    x1, y1 = x0 + rng.integers(spec.width // 8, spec.width // 2), y0 + rng.integers(spec.height // 8, spec.height // 2)
    draw.ellipse((int(x0), int(y0), int(x1), int(y1)), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    dy, dx = rng.integers(0, spec.height), rng.integers(0, spec.width)
    noisy = np.asarray(field, dtype=np.int16) + _noise(spec)[dy:dy + spec.height, dx:dx + spec.width]
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8))


def _write(job: tuple[JpegSpec, str, int]) -> None:
    spec, path, key = job
    _image(spec, key).save(path, format="JPEG", quality=spec.quality)


def write_imagefolder(root: str | Path, spec: JpegSpec, workers: int = 1) -> JpegSpec:
    """Write ``spec``'s images under ``root`` with ``workers`` processes; a folder already holding the same
    spec (``jpeg_spec.json``) is kept as it is. Returns ``spec``."""
    root = Path(root)
    marker = root / SPEC_JSON
    if marker.is_file() and json.loads(marker.read_text()) == asdict(spec):
        return spec
    jobs = []
    for split, per in (("train", spec.train_per_class), ("val", spec.val_per_class)):
        for c in range(spec.classes):
            folder = root / split / f"c{c:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per):
                key = (0 if split == "train" else 1) * 10**9 + c * 10**5 + i
                jobs.append((spec, str(folder / f"{split}_{c:04d}_{i:05d}.JPEG"), key))
    if workers > 1:
        with get_context("fork").Pool(workers) as pool:
            pool.map(_write, jobs, chunksize=64)
    else:
        for job in jobs:
            _write(job)
    marker.write_text(json.dumps(asdict(spec)))
    return spec
