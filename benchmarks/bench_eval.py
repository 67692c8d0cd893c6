"""P7 and P8: the evaluation data path on ImageNet-shaped JPEGs (:mod:`benchmarks.jpeg_imagefolder`, 500 x 375,
quality 90), data side only (no model): what a rank's validation and size sweep read.

* **P7** per-epoch validation images/s at 224 px: one rank's :class:`~mixsize_ray.data.eval_source.EvalSource`
  loaders (``source.pixels(224)``, loader workers on every core, batches of 64: the uint8 channels_last batches
  that ``TrainingLoop.validate`` copies to its device) over this machine's floor measured in the same repeat: a
  ``multiprocessing.Pool`` on every core doing only ``PIL.Image.open(path).convert("RGB")``, a bilinear resize
  of the short side to 256 and a 224 center crop, nothing collated or sent back. Target >= 0.8. The
  normalisation runs on the device (on a GPU, not on the loader's cores); on this CPU-only machine the device
  IS these cores, so ``detail`` also records ``source(224)`` normalised here (``cpu_normalised_images_per_s``),
  timed in the same repeat.
* **P8** a 13-size sweep's data side (``default_sizes("imagenet", 224)``: 32..416 px): one pass of
  ``source.together(sizes)`` (each image decoded once per reduced scale it needs, bit-identical per size)
  over 13 passes of ``source(S)`` (what the sweep read before, size after size). Both in one process
  (``num_workers=0``: the cost itself, not the parallelism). Target <= 0.75.

Each repeat times both sides of a figure back to back (interleaved), after one warm-up pass of each.
"""

from __future__ import annotations

import os
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

from benchmarks.figure import DEFAULT, Budget, Figure, interleaved
from benchmarks.jpeg_imagefolder import JpegSpec, write_imagefolder

P7_SPEC = JpegSpec(classes=10, train_per_class=0, val_per_class=100)  # 1,000 validation JPEGs
P8_SPEC = JpegSpec(classes=4, train_per_class=0, val_per_class=20)  # 80: 13 sizes each
EVAL_SIZE, BATCH = 224, 64


def _floor_one(path: str) -> int:
    """PIL decode + short-side resize to 256 + 224 center crop of one file: the floor's unit of work."""
    from PIL import Image

    with Image.open(path) as img:
        rgb = img.convert("RGB")
    w, h = rgb.size
    side = int(8 / 7 * EVAL_SIZE)
    rw, rh = (side, int(side * h / w)) if w <= h else (int(side * w / h), side)
    small = rgb.resize((rw, rh), Image.Resampling.BILINEAR)
    left, top = (rw - EVAL_SIZE) // 2, (rh - EVAL_SIZE) // 2
    return small.crop((left, top, left + EVAL_SIZE, top + EVAL_SIZE)).size[0]


def floor_seconds(paths: list[str], cores: int) -> float:
    """Seconds for ``cores`` processes to decode, resize and crop every file of ``paths`` (pool start included,
    as a loader's worker start is)."""
    t0 = time.perf_counter()
    with get_context("fork").Pool(cores) as pool:
        for _ in pool.imap_unordered(_floor_one, paths, chunksize=16):
            pass
    return time.perf_counter() - t0


def _source(root: Path, workers: int):
    from mixsize_ray.data.datasets import build_dataset
    from mixsize_ray.data.eval_source import EvalSource
    from mixsize_ray.data.loader import LoaderWorkers
    from mixsize_ray.data.presets import DataPreset

    test = build_dataset("imagefolder", str(root), "test")
    return test, EvalSource(DataPreset.for_dataset("imagefolder"), test, BATCH, workers=LoaderWorkers(workers))


def _seconds(batches) -> float:
    t0 = time.perf_counter()
    for _ in batches:
        pass
    return time.perf_counter() - t0


def measure_p7(budget: Budget = DEFAULT, spec: JpegSpec = P7_SPEC) -> Figure:
    """P7: validation loader images/s over the PIL floor on every core (images/s ratio = floor s / loader s)."""
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        write_imagefolder(tmp, spec, workers=cores)
        test, source = _source(Path(tmp), cores)
        paths = [p for p, _ in test.samples]
        _seconds(source(EVAL_SIZE)), floor_seconds(paths, cores)  # warm-up: page cache, imports
        loader_s, floor_s = interleaved(lambda: _seconds(source.pixels(EVAL_SIZE)),
                                        lambda: floor_seconds(paths, cores), budget.repeats)
        normalised_s = [_seconds(source(EVAL_SIZE)) for _ in range(budget.repeats)]
    n = spec.val_images
    for r, (a, b, c) in enumerate(zip(loader_s, floor_s, normalised_s, strict=True)):
        print(f"[bench] P7 repeat {r + 1}/{budget.repeats}: validation loader {n / a:.0f} img/s, floor {n / b:.0f} "
              f"img/s (normalised on this CPU too: {n / c:.0f} img/s)", flush=True)
    return Figure("P7", f"validation data path at {EVAL_SIZE} px ({cores} loader workers) / PIL floor, img/s",
                  [b / a for a, b in zip(loader_s, floor_s, strict=True)], target=0.8, at_least=True,
                  detail={"images": n, "cores": cores, "batch": BATCH, "jpeg": [spec.width, spec.height, spec.quality],
                          "loader_images_per_s": [n / a for a in loader_s],
                          "floor_images_per_s": [n / b for b in floor_s],
                          "cpu_normalised_images_per_s": [n / c for c in normalised_s]})


def measure_p8(budget: Budget = DEFAULT, spec: JpegSpec = P8_SPEC) -> Figure:
    """P8: a 13-size sweep's data side, one pass for all sizes over 13 per-size passes (seconds ratio)."""
    from mixsize_ray.core.evaluation import default_sizes

    sizes = default_sizes("imagenet", EVAL_SIZE)
    with tempfile.TemporaryDirectory() as tmp:
        write_imagefolder(tmp, spec, workers=os.cpu_count() or 1)
        _, source = _source(Path(tmp), 0)

        def per_size() -> float:
            return sum(_seconds(source(s)) for s in sizes)

        def one_pass() -> float:
            return _seconds(source.together(sizes))

        per_size(), one_pass()  # warm-up
        separate, together = interleaved(per_size, one_pass, budget.repeats)
    for r, (a, b) in enumerate(zip(separate, together, strict=True)):
        print(f"[bench] P8 repeat {r + 1}/{budget.repeats}: {len(sizes)} per-size passes {a:.1f} s, one pass "
              f"{b:.1f} s", flush=True)
    return Figure("P8", f"{len(sizes)}-size sweep data side, one pass / {len(sizes)} per-size passes, seconds",
                  [b / a for a, b in zip(separate, together, strict=True)], target=0.75, at_least=False,
                  detail={"images": spec.val_images, "sizes": sizes, "per_size_passes_s": separate,
                          "one_pass_s": together, "num_workers": 0})
