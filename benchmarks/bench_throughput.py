"""P1: Ray Train with 1 worker over the bare loop, training images/s (target >= 0.95).

The same config (CIFAR S(28) D+ on the embedded data, ResNet-20), the same threads (all cores), the same
in-process data loading. Each repeat times one epoch of ``budget.window`` steps of each, back to back:

* bare: a :class:`~mixsize_ray.train.loop.TrainingLoop` in this process, warmed up by one epoch before the
  first repeat, one epoch per repeat;
* Ray: one ``launch`` of a 2-epoch run through Ray Train (1 worker) on a Ray instance started once; its
  second epoch is the timed one (the first pays the worker's start-up).

Both figures are the loop's own ``images_per_s`` of the timed epoch, so each side is timed the same way;
what Ray adds around an epoch (report, checkpoint) is kept as ``ray_run_wall_s``.
"""

from __future__ import annotations

import os
import tempfile
import time

import torch

from benchmarks.common import preset_config
from benchmarks.figure import DEFAULT, Budget, Figure
from mixsize_ray.train.launch import launch
from mixsize_ray.train.loop import TrainingLoop

PRESET = "cifar_s28_dplus"


def _sets(budget: Budget, train_size: int) -> list[str]:
    return [f"data.train_size={max(train_size, budget.window * 64)}", "data.test_size=128", "data.num_workers=0",
            f"train.max_steps_per_epoch={budget.window}"]


def measure(budget: Budget = DEFAULT, train_size: int = 4096) -> Figure:
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    bare_loop = TrainingLoop(preset_config(PRESET, [*_sets(budget, train_size), f"train.epochs={budget.repeats + 1}"]),
                             log=lambda _m: None)
    bare_loop.train_epoch()  # warm-up
    import ray

    owned = not ray.is_initialized()  # under pytest a session cluster may be up already
    if owned:
        ray.init(address="local", num_cpus=cores, include_dashboard=False, log_to_driver=False)
    bare, rayed, walls = [], [], []
    try:
        with tempfile.TemporaryDirectory() as out:
            for r in range(budget.repeats):
                bare.append(bare_loop.train_epoch()["images_per_s"])
                cfg = preset_config(PRESET, [*_sets(budget, train_size), "train.epochs=2", "ray.num_workers=1",
                                             f"ray.cpus_per_worker={cores}", f"train.output_dir={out}",
                                             f"train.name=p1-{r}"])
                t0 = time.perf_counter()
                rayed.append(launch(cfg).metrics["images_per_s"])
                walls.append(time.perf_counter() - t0)
                print(f"[bench] P1 repeat {r + 1}/{budget.repeats}: bare {bare[-1]:.0f} img/s, "
                      f"Ray Train {rayed[-1]:.0f} img/s", flush=True)
    finally:
        if owned:
            ray.shutdown()
    return Figure("P1", "Ray Train 1 worker / bare loop, images/s", [b / a for a, b in zip(bare, rayed, strict=True)],
                  target=0.95, at_least=True,
                  detail={"bare_images_per_s": bare, "ray_images_per_s": rayed, "ray_run_wall_s": walls,
                          "steps_per_window": budget.window, "preset": PRESET, "threads": cores})
