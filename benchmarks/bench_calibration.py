"""BN calibration time for a 13-size sweep (16..64 step 4) of ResNet-20 on the embedded shapes data.

Uses the real training-augmentation loader per size (what calibration runs on). N batches per size from
env BENCH_CALIB_BATCHES (default 200, the paper's value), batch from BENCH_CALIB_BATCH (default 64).
"""

from __future__ import annotations

import os
import time

import torch

from benchmarks.common import write_result
from mixsize_ray.config import load_config
from mixsize_ray.core.calibration import calibrate_sizes
from mixsize_ray.core.evaluation import default_sizes
from mixsize_ray.data.loader import CalibrationDraw
from mixsize_ray.models import build_model
from mixsize_ray.train.data_bundle import DataBundle


def main() -> dict:
    n = int(os.environ.get("BENCH_CALIB_BATCHES", "200"))
    batch = int(os.environ.get("BENCH_CALIB_BATCH", "64"))
    cfg = load_config(None, ["data.train_size=10000", "data.test_size=256"])
    data = DataBundle(cfg)
    model = build_model("resnet20", data.info.num_classes)
    sizes = default_sizes("cifar", 32)
    per_size: dict[int, float] = {}
    t0 = time.perf_counter()
    last = [t0]

    def tick(size: int) -> None:
        now = time.perf_counter()
        per_size[size] = now - last[0]
        last[0] = now
        print(f"[bench] calibrated size {size}: {per_size[size]:.1f} s", flush=True)

    source = data.preset.calibration_source(data.train_set, CalibrationDraw(batch_size=batch, num_batches=n))
    calibrate_sizes(model, sizes, source, num_batches=n, progress=tick)
    total = time.perf_counter() - t0
    doc = {"sizes": sizes, "num_sizes": len(sizes), "batches_per_size": n, "batch": batch,
           "total_s": total, "per_size_s": per_size, "threads": torch.get_num_threads()}
    write_result("calibration", doc)
    return doc


if __name__ == "__main__":
    main()
