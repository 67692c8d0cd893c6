"""P5: BN calibration of a 13-size sweep (16..64 step 4) over one training epoch on the same data
(target <= 1), and what the one-pass calibration saves on ImageNet-style data (``P5 data``).

The product's own calibration (``TrainingLoop.calibrate``: ``train.calibrate_batches`` training batches of
``min(B0, 256)`` images per size, the CIFAR-style augmentation done once and resized to each size) on the
D+ preset's ResNet-20 and 10,000 embedded training images; the epoch is that preset's training epoch over the
same 10,000 images. Each repeat times one sweep's calibration, then one epoch. ``--set``-style overrides in
``sets`` change the protocol (e.g. ``train.calibrate_batches=25``) for the trade-off study in
``benchmarks/calibration_tradeoff.py``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.common import preset_config
from benchmarks.figure import DEFAULT, Budget, Figure, interleaved
from mixsize_ray.config import TrainConfig
from mixsize_ray.core.evaluation import default_sizes
from mixsize_ray.train.loop import TrainingLoop

PRESET = "cifar_s28_dplus"


def product_protocol() -> list[str]:
    """The calibration a run does by default (``TrainConfig.calibrate_batches``: 200, the paper's "200
    batches"), undoing the quiet benchmarks' 1 batch.

    Example:
        >>> product_protocol()
        ['train.calibrate_batches=200']
    """
    return [f"train.calibrate_batches={TrainConfig.calibrate_batches}"]


def measure(budget: Budget = DEFAULT, train_size: int = 10000, sets: tuple[str, ...] = ()) -> Figure:
    loop = TrainingLoop(preset_config(PRESET, [f"data.train_size={train_size}", "data.test_size=128",
                                                f"train.epochs={budget.repeats + 1}", *product_protocol(), *sets]),
                        log=lambda _m: None)
    sizes = default_sizes("cifar", 32)
    loop.train_epoch()  # warm-up (and the data generated)
    ratios, calib, epoch = [], [], []
    for r in range(budget.repeats):
        t0 = time.perf_counter()
        loop.calibrate(sizes)
        calib.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        loop.train_epoch()
        epoch.append(time.perf_counter() - t0)
        ratios.append(calib[-1] / epoch[-1])
        print(f"[bench] P5 repeat {r + 1}/{budget.repeats}: calibration of {len(sizes)} sizes {calib[-1]:.1f} s, "
              f"epoch {epoch[-1]:.1f} s ({ratios[-1]:.2f} epochs)", flush=True)
    draw = loop.data.calibration_draw()
    return Figure("P5", f"BN calibration of {len(sizes)} sizes / 1 training epoch", ratios, target=1.0,
                  at_least=False, unit=" epoch",
                  detail={"calibration_s": calib, "epoch_s": epoch, "sizes": sizes, "train_images": train_size,
                          "calibration_batches": draw.num_batches, "calibration_batch": draw.batch_size,
                          "steps_per_epoch": loop.steps_per_epoch})


def _image_folder(root: Path, images: int) -> None:
    """``root/train/<class>/*.JPEG``: ``images`` 500x375 JPEGs (ImageNet's typical shape) in 4 classes."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(images):
        folder = root / "train" / f"c{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (rng.random((375, 500, 3)) * 255).astype("uint8")
        Image.fromarray(pixels).save(folder / f"{i}.JPEG", quality=90)


def measure_data_passes(budget: Budget = DEFAULT, images: int = 256) -> Figure:
    """P5 data: the ImageNet-style calibration data of a 13-size sweep (S0 = 224: 32..416 px), read as 13
    per-size passes (RandomResizedCrop(S) per size, what calibrating one size at a time reads) over one pass
    that decodes and crops each JPEG once (:class:`~mixsize_ray.data.transforms.SharedCrop`). Data only, no
    model: what the one-pass calibration saves where decoding is the bottleneck (a GPU run)."""
    from mixsize_ray.data.datasets import build_dataset
    from mixsize_ray.data.loader import CalibrationDraw
    from mixsize_ray.data.presets import DataPreset

    sizes = default_sizes("imagenet", 224)
    with tempfile.TemporaryDirectory() as tmp:
        _image_folder(Path(tmp), images)
        dataset = build_dataset("imagefolder", tmp, "train")
        preset = DataPreset.for_dataset("imagefolder")
        source = preset.calibration_source(dataset, CalibrationDraw(batch_size=32, num_batches=images // 32))

        def per_size() -> float:
            t0 = time.perf_counter()
            for s in sizes:
                for _ in source(s):
                    pass
            return time.perf_counter() - t0

        def one_pass() -> float:
            t0 = time.perf_counter()
            for _ in source.together(sizes):
                pass
            return time.perf_counter() - t0

        separate, together = interleaved(per_size, one_pass, budget.repeats)
    for r, (a, b) in enumerate(zip(separate, together, strict=True)):
        print(f"[bench] P5 data repeat {r + 1}/{budget.repeats}: {len(sizes)} passes {a:.1f} s, one pass {b:.1f} s",
              flush=True)
    return Figure("P5 data", f"ImageNet-style calibration data, {len(sizes)} passes / 1 pass", [
        a / b for a, b in zip(separate, together, strict=True)],
        detail={"per_size_passes_s": separate, "one_pass_s": together, "jpegs": images, "sizes": sizes})
