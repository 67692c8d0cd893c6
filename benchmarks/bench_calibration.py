"""P5: BN calibration of a 13-size sweep (16..64 step 4) over one training epoch on the same data
(target <= 1).

The product's own calibration (``TrainingLoop.calibrate``: ``train.calibrate_batches`` training batches of
``min(B0, 256)`` images per size, the CIFAR-style augmentation done once and resized to each size) on the
D+ preset's ResNet-20 and 10,000 embedded training images; the epoch is that preset's training epoch over the
same 10,000 images. Each repeat times one sweep's calibration, then one epoch. ``--set``-style overrides in
``sets`` change the protocol (e.g. ``train.calibrate_batches=25``) for the trade-off study in
``benchmarks/calibration_tradeoff.py``.
"""

from __future__ import annotations

import time

from benchmarks.common import preset_config
from benchmarks.figure import DEFAULT, Budget, Figure
from mixsize_ray.core.evaluation import default_sizes
from mixsize_ray.train.loop import TrainingLoop

PRESET = "cifar_s28_dplus"


def measure(budget: Budget = DEFAULT, train_size: int = 10000, sets: tuple[str, ...] = ()) -> Figure:
    loop = TrainingLoop(preset_config(PRESET, [f"data.train_size={train_size}", "data.test_size=128",
                                                f"train.epochs={budget.repeats + 1}", *sets]), log=lambda _m: None)
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
