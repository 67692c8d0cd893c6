"""Training throughput (images/s): bare torch loop vs Ray Train with 1 worker vs Ray Train with 2 workers.

The same config (CIFAR S(28) D+ on the embedded data, ResNet-20), the same steps; images/s of epoch 1
(epoch 0 includes start-up). Bare and 1-worker runs use all cores' threads; 2 workers split them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from benchmarks.common import write_result
from mixsize_ray.config import load_config
from mixsize_ray.train.launch import launch
from mixsize_ray.train.loop import TrainingLoop

PRESET = Path(__file__).resolve().parents[1] / "search_spaces" / "cifar_s28_dplus.yaml"
SETS = ["data.train_size=4096", "data.test_size=128", "data.num_workers=0", "train.epochs=2",
        "train.max_steps_per_epoch=16", "train.calibrate_batches=1", "train.sweep_sizes=[32]",
        "tracking.enabled=false", "train.eval_every=100"]


def bare(cores: int) -> float:
    torch.set_num_threads(cores)
    loop = TrainingLoop(load_config(PRESET, SETS), log=lambda _m: None)
    loop.train_epoch()
    return loop.train_epoch()["images_per_s"]


def ray_run(workers: int, cores: int, out: str) -> float:
    cfg = load_config(PRESET, [*SETS, f"ray.num_workers={workers}", f"ray.cpus_per_worker={cores // workers}",
                               f"train.output_dir={out}", f"train.name=bench{workers}"])
    return launch(cfg).metrics["images_per_s"]


def main() -> dict:
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as out:
        r_bare = bare(cores)
        r1 = ray_run(1, cores, out)
        r2 = ray_run(2, cores, out) if cores >= 2 else float("nan")
    doc = {"cores": cores, "bare_images_per_s": r_bare, "ray_1_worker_images_per_s": r1,
           "ray_2_workers_images_per_s": r2, "ray1_over_bare": r1 / r_bare, "ray2_over_ray1": r2 / r1}
    write_result("throughput", doc)
    return doc


if __name__ == "__main__":
    main()
