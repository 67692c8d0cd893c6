"""P9: the ImageNet-style training JPEG loader, images/s in one process at 128, 160 and 224 px: reduced-scale
decode (:mod:`mixsize_ray.data.jpeg_draft`) over the full decode, one ratio per size (no target: a measurement).

The images are :mod:`benchmarks.jpeg_imagefolder`'s ImageNet-shaped JPEGs (quality 90; what ``make gpu-check``
trains on): 200 at 500x375 (``typical``) and a tail of 40 at 1200x900 (``large``). Both sides run the same
training loader (:meth:`~mixsize_ray.data.presets.DataPreset.train_loader`, ``num_workers=0``, batches of 32,
one pass over every image) with the same seed, so they draw the same crop boxes and flips; they differ only in
the ImageFolder loader: ``open_image(lazy=False)`` decodes every file in full (what the loader did before),
``open_image`` leaves JPEGs lazy for the draft-aware crop. Each repeat times full then reduced at each size,
each shape apart; a figure's value is the ratio over all 240 images (total images / total time), ``detail``
keeps the images/s and the median ratio per shape.
"""

from __future__ import annotations

import functools
import statistics
import tempfile
import time
from typing import NamedTuple

from benchmarks.figure import DEFAULT, Budget, Figure
from benchmarks.jpeg_imagefolder import JpegSpec, write_imagefolder

SIZES = (128, 160, 224)
SHAPES: dict[str, JpegSpec] = {
    "typical": JpegSpec(classes=4, train_per_class=50, val_per_class=0),
    "large": JpegSpec(classes=4, train_per_class=10, val_per_class=0, width=1200, height=900),
}
"""name -> the training JPEGs of that shape: 200 at ImageNet's usual 500x375, a tail of 40 at 1200x900."""
BATCH = 32


class _Step(NamedTuple):
    size: int
    batch: int
    duplicates: int
    indices: list[int]
    step: int


def loader_images_per_s(dataset, size: int) -> float:
    """Images/s of one pass of the training loader over ``dataset`` at ``size`` (in this process)."""
    from mixsize_ray.data.presets import DataPreset

    n = len(dataset) // BATCH * BATCH
    steps = [_Step(size, BATCH, 1, list(range(k, k + BATCH)), k // BATCH) for k in range(0, n, BATCH)]
    loader = DataPreset.for_dataset("imagefolder").train_loader(dataset, lambda: steps, seed=0)
    t0 = time.perf_counter()
    images = sum(int(batch.images.shape[0]) for batch in loader)
    return images / (time.perf_counter() - t0)


def measure(budget: Budget = DEFAULT, shapes: dict[str, JpegSpec] = SHAPES) -> list[Figure]:
    """One figure per size of :data:`SIZES`: reduced / full images/s over all of ``shapes``'s images."""
    from torchvision.datasets import ImageFolder

    from mixsize_ray.data.jpeg_draft import open_image

    rates: dict[tuple[str, str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sets = {}
        for name, spec in shapes.items():
            write_imagefolder(f"{tmp}/{name}", spec)
            sets[name] = {"full": ImageFolder(f"{tmp}/{name}/train", loader=functools.partial(open_image, lazy=False)),
                          "reduced": ImageFolder(f"{tmp}/{name}/train", loader=open_image)}
        for name in shapes:  # warm-up: page cache, allocator
            for decode in ("full", "reduced"):
                loader_images_per_s(sets[name][decode], SIZES[0])
        for r in range(budget.repeats):
            for size in SIZES:
                for name in shapes:
                    for decode in ("full", "reduced"):
                        rates.setdefault((name, decode, size), []).append(
                            loader_images_per_s(sets[name][decode], size))
                line = ", ".join(f"{n} {rates[n, 'full', size][-1]:.0f} -> {rates[n, 'reduced', size][-1]:.0f}"
                                 for n in shapes)
                print(f"[bench] P9 repeat {r + 1}/{budget.repeats} at {size} px: img/s full -> reduced: {line}",
                      flush=True)
    counts = {name: spec.train_images for name, spec in shapes.items()}
    total = sum(counts.values())

    def mixed(decode: str, size: int, r: int) -> float:  # images/s over all shapes: total images / total time
        return total / sum(counts[n] / rates[n, decode, size][r] for n in shapes)

    figures = []
    for size in SIZES:
        full = [mixed("full", size, r) for r in range(budget.repeats)]
        reduced = [mixed("reduced", size, r) for r in range(budget.repeats)]
        detail = {"size": size, "batch": BATCH, "num_workers": 0,
                  "shapes": {n: {"width_height": [spec.width, spec.height], "images": spec.train_images,
                                 "quality": spec.quality} for n, spec in shapes.items()},
                  "full_images_per_s": full, "reduced_images_per_s": reduced}
        for n in shapes:
            detail[f"{n}_full_images_per_s"] = rates[n, "full", size]
            detail[f"{n}_reduced_images_per_s"] = rates[n, "reduced", size]
            detail[f"{n}_ratio_median"] = statistics.median(
                a / b for a, b in zip(rates[n, "reduced", size], rates[n, "full", size], strict=True))
        figures.append(Figure(f"P9 {size}", f"JPEG training loader at {size} px, reduced / full decode, img/s",
                              [a / b for a, b in zip(reduced, full, strict=True)], detail=detail))
    return figures
