"""How many calibration images BN calibration needs: calibrated top-1 of a trained checkpoint at the 13 sizes
(16..64 step 4) against the number of images per size, and the noise floor of the full protocol.

    python -m benchmarks.calibration_tradeoff CHECKPOINT [--test-images 4000]

``CHECKPOINT`` is a trained run's checkpoint folder, e.g. the B+ seed-0 run of ``make reproduce``
(``runs/reproduce/runs/reproduce-bplus-s0/checkpoint_*``). Every protocol calibrates all 13 sizes from
the run's own training data and augmentation (:meth:`~mixsize_ray.data.presets.CalibrationSource.together`),
then evaluates each size on ``--test-images`` test images (0.2 points = 8 images at 4000). The reference is
the product's default, 200 batches of the run's B0; a second draw of it (another seed) is the noise floor.
Writes ``benchmarks/results/calibration_tradeoff.json``.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from benchmarks.common import write_result
from mixsize_ray.core.calibration import calibrate_sizes_together
from mixsize_ray.core.evaluation import default_sizes, evaluate_top_k
from mixsize_ray.data.loader import CalibrationDraw
from mixsize_ray.models import build_model
from mixsize_ray.train.checkpoint import load_checkpoint
from mixsize_ray.train.data_bundle import DataBundle
from mixsize_ray.train.evaluate import checkpoint_config

# (label, batch, batches, seed); batch None = the run's B0 (the product's rule: min(B0, 256))
PROTOCOLS = [("full", None, 200, 0), ("full, another draw", None, 200, 1), ("1/4 of the images", None, 50, 0),
             ("1/8 of the images", None, 25, 0), ("full images, batch 128", 128, 50, 0),
             ("<= 1 epoch budget, batch 128", 128, 12, 0)]


def calibrated_top1(model, data: DataBundle, draw: CalibrationDraw, sizes: list[int], evals) -> tuple[dict, float]:
    """``({size: top-1 %}, calibration seconds)`` of one protocol."""
    source = data.preset.calibration_source(data.train_set, draw)
    t0 = time.perf_counter()
    cache = calibrate_sizes_together(model, source.together(sizes), draw.num_batches)
    seconds = time.perf_counter() - t0
    own = {k: v.clone() for k, v in model.state_dict().items()}
    top1 = {}
    for s in sizes:
        cache.apply(model, s, exact=True)
        top1[s] = 100 * float(evaluate_top_k(model, evals[s], ks=(1,))["top1"])
    model.load_state_dict(own)
    return top1, seconds


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.calibration_tradeoff")
    parser.add_argument("checkpoint")
    parser.add_argument("--test-images", type=int, default=4000)
    args = parser.parse_args(argv)
    cfg = checkpoint_config(args.checkpoint, [f"data.test_size={args.test_images}"])
    data = DataBundle(cfg)
    model = build_model(cfg.model.name, data.info.num_classes)
    model.load_state_dict(load_checkpoint(args.checkpoint)["model"])
    model.eval()
    sizes = default_sizes(data.info.style, cfg.regime.base_size)
    evals = {s: list(data.eval_batches(s)) for s in sizes}
    rows, reference = [], None
    for label, batch, n, seed in PROTOCOLS:
        draw = CalibrationDraw(batch or data.calibration_draw().batch_size, n, seed=seed)
        top1, seconds = calibrated_top1(model, data, draw, sizes, evals)
        reference = reference or top1
        delta = [top1[s] - reference[s] for s in sizes]
        rows.append({"protocol": label, "batch": draw.batch_size, "batches": n, "seed": seed,
                     "images_per_size": draw.batch_size * n, "calibration_s": seconds, "top1": top1,
                     "mean_abs_delta": sum(abs(d) for d in delta) / len(delta), "max_abs_delta": max(map(abs, delta)),
                     "mean_delta": sum(delta) / len(delta)})
        r = rows[-1]
        print(f"[tradeoff] {label:30s} {r['images_per_size']:>6} img/size {seconds:6.1f} s  "
              f"mean |d| {r['mean_abs_delta']:.2f}  max |d| {r['max_abs_delta']:.2f}  mean d {r['mean_delta']:+.2f} points",
              flush=True)
    write_result("calibration_tradeoff", {"checkpoint": args.checkpoint, "test_images": args.test_images,
                                          "sizes": sizes, "threads": torch.get_num_threads(), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
