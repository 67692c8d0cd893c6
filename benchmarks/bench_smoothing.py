"""P4: gradient smoothing as a fraction of step time (ResNet-20, 32 px, batch 128, SGD; target <= 1 %).

Each repeat runs a window of ``budget.window`` steps with smoothing and one without (same model, same data),
back to back. The figure is the smoother's own time (timed around ``GradientSmoother.step``, with a device
sync on CUDA) over the median step time with smoothing; the difference of the two windows' median step times
is kept as ``window_overhead`` (the same quantity measured from outside, noisier by nature).
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from benchmarks.figure import DEFAULT, Budget, Figure
from mixsize_ray.core.smoothing import GradientSmoother
from mixsize_ray.models import build_model


class _Bench:
    def __init__(self, batch: int, size: int):
        torch.manual_seed(0)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = build_model("resnet20", 10).to(self.device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.smoother = GradientSmoother(0.9, check_finite=False)
        self.x = torch.randn(batch, 3, size, size, device=self.device)
        self.y = torch.randint(0, 10, (batch,), device=self.device)

    def sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def step(self, smooth: bool) -> tuple[float, float]:
        """One step; ``(step seconds, smoothing seconds)``."""
        self.sync()
        t0 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        F.cross_entropy(self.model(self.x), self.y).backward()
        spent = 0.0
        if smooth:
            self.sync()
            ts = time.perf_counter()
            self.smoother.step(self.opt)
            self.sync()
            spent = time.perf_counter() - ts
        self.opt.step()
        self.sync()
        return time.perf_counter() - t0, spent

    def window(self, smooth: bool, steps: int) -> tuple[float, float]:
        times = [self.step(smooth) for _ in range(steps)]
        return statistics.median(t for t, _ in times), statistics.median(s for _, s in times)


def measure(budget: Budget = DEFAULT, batch: int = 128, size: int = 32) -> Figure:
    b = _Bench(batch, size)
    for _ in range(budget.warmup):
        b.step(True)
    fractions, overheads, steps_with, steps_without = [], [], [], []
    for r in range(budget.repeats):
        with_s, smooth_s = b.window(True, budget.window)
        without_s, _ = b.window(False, budget.window)
        fractions.append(smooth_s / with_s)
        overheads.append(with_s / without_s - 1)
        steps_with.append(with_s)
        steps_without.append(without_s)
        print(f"[bench] P4 repeat {r + 1}/{budget.repeats}: smoothing {smooth_s * 1e3:.2f} ms of a "
              f"{with_s * 1e3:.1f} ms step ({fractions[-1]:.2%})", flush=True)
    return Figure("P4", "gradient smoothing / step time", fractions, target=0.01, at_least=False,
                  detail={"window_overhead": overheads, "step_s_with": steps_with, "step_s_without": steps_without,
                          "model": "resnet20", "size": size, "batch": batch, "device": b.device})
