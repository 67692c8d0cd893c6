"""P3: loader headroom: loader-only images/s over training images/s at the smallest size of the B+ preset
(target >= 3).

B+ feeds B0 * (S0/S)^2 images per step at the smallest size S (4x at 16 px for S0 = 32): if the loader cannot
keep up there, B+'s fewer steps do not turn into less time. Both sides run the preset's own loader
(``data.num_workers`` workers, the training augmentation) over a schedule of that size only, with the preset's
batch at that size; each repeat times one pass of ``budget.window`` batches of each, loader first.
"""

from __future__ import annotations

import time

from benchmarks.common import preset_config
from benchmarks.figure import DEFAULT, Budget, Figure
from mixsize_ray.train.loop import TrainingLoop

PRESET = "cifar_s28_bplus"


def loader_images_per_s(loop: TrainingLoop, epoch: int) -> float:
    """Images/s of one pass of the loop's loader alone (batches built, nothing trained)."""
    loop.schedule.set_epoch(epoch, 0)
    t0 = time.perf_counter()
    images = sum(int(batch.images.shape[0]) for batch in loop.loader)
    return images / (time.perf_counter() - t0)


def measure(budget: Budget = DEFAULT, train_size: int = 10000) -> Figure:
    preset = preset_config(PRESET, [])
    smallest = min(preset.regime.sizes)
    from mixsize_ray.core.regime import regime_from_config

    entry = next(e for e in regime_from_config(preset, world_size=1, num_images=train_size).solve().entries
                 if e.size == smallest)
    train_size = max(train_size, entry.batch * budget.window)  # an epoch holds the whole window
    # one size, the preset's batch there (B+: max_batch pins it; D = 1), the preset's base for the LR
    loop = TrainingLoop(preset_config(PRESET, [
        f"data.train_size={train_size}", "data.test_size=128", f"regime.sizes=[{smallest}]", "regime.probs=[1.0]",
        f"regime.max_batch={entry.batch}", f"train.epochs={2 * budget.repeats + 1}",
        f"train.max_steps_per_epoch={budget.window}"]), log=lambda _m: None)
    assert loop.table.entries[0].batch == entry.batch, (loop.table.entries, entry)
    loop.train_epoch()  # warm-up
    loader, train = [], []
    for r in range(budget.repeats):
        loader.append(loader_images_per_s(loop, loop.epoch))
        train.append(loop.train_epoch()["images_per_s"])
        print(f"[bench] P3 repeat {r + 1}/{budget.repeats}: loader {loader[-1]:.0f} img/s, "
              f"training {train[-1]:.0f} img/s at {smallest} px", flush=True)
    return Figure("P3", f"loader-only / training images/s at {smallest} px (B+)",
                  [a / b for a, b in zip(loader, train, strict=True)], target=3.0, at_least=True,
                  detail={"size": smallest, "batch": entry.batch, "loader_images_per_s": loader,
                          "training_images_per_s": train, "num_workers": loop.cfg.data.num_workers})
