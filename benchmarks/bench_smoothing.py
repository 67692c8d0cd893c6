"""Gradient smoothing cost as a fraction of a training step (ResNet-20, 32 px, batch 128, SGD).

Interleaves steps with and without smoothing (same model, same data) so drift affects both alike, and
reports median step times and their ratio: overhead = median(with) / median(without) - 1.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from benchmarks.common import write_result
from mixsize_ray.core.smoothing import GradientSmoother
from mixsize_ray.models import build_model


def main(steps: int = 30, batch: int = 128, size: int = 32) -> dict:
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_model("resnet20", 10).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    smoother = GradientSmoother(0.9)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    times: dict[bool, list[float]] = {True: [], False: []}
    smooth_only: list[float] = []

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    for i in range(steps * 2 + 4):
        use = bool(i % 2)
        sync()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        if use:
            sync()
            ts = time.perf_counter()
            smoother.step(opt)
            sync()
            smooth_only.append(time.perf_counter() - ts)
        opt.step()
        sync()
        if i >= 4:  # warm-up excluded
            times[use].append(time.perf_counter() - t0)
    with_s, without = statistics.median(times[True]), statistics.median(times[False])
    doc = {
        "model": "resnet20", "size": size, "batch": batch, "device": device, "steps_each": len(times[True]),
        "step_s_without": without, "step_s_with": with_s,
        "smoothing_call_s": statistics.median(smooth_only[2:]),
        "overhead_fraction": with_s / without - 1,
        "smoothing_fraction_of_step": statistics.median(smooth_only[2:]) / with_s,
    }
    write_result("smoothing", doc)
    return doc


if __name__ == "__main__":
    main()
