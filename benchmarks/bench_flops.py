"""P6: achieved training FLOP/s over this machine's fp32 matmul FLOP/s (no target: a utilisation figure).

Training FLOPs per step come from ``torch.utils.flop_counter.FlopCounterMode`` on one forward + loss +
backward of each shape of the D+ preset's table (counted once, on a copy of the model); a training epoch of
``budget.window`` steps gives the steps per size and the seconds. The machine's figure is a square fp32 matmul
(``torch.mm``, all threads) timed in the same run: each repeat times a matmul window, then a training window.
"""

from __future__ import annotations

import copy
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import preset_config
from benchmarks.figure import DEFAULT, Budget, Figure
from mixsize_ray.core.loss import batch_augmentation_loss
from mixsize_ray.train.loop import TrainingLoop

PRESET = "cifar_s28_dplus"


def step_flops(model: torch.nn.Module, size: int, views: int, duplicates: int, classes: int) -> int:
    """FLOPs of one training step's forward, loss and backward at ``[views, 3, size, size]``.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 10))
        >>> step_flops(net, 4, views=2, duplicates=1, classes=10)  # fwd 2*2*48*10, bwd twice that (no input grad)
        3840
    """
    net = copy.deepcopy(model)
    x = torch.randn(views, 3, size, size)
    y = torch.randint(0, classes, (views,))
    with FlopCounterMode(display=False) as counter:
        batch_augmentation_loss(net(x).float(), y, duplicates).backward()
    return int(counter.get_total_flops())


def matmul_flops_per_s(n: int = 1024, seconds: float = 1.0) -> float:
    """fp32 ``n x n`` matmul FLOP/s on this process's threads, over about ``seconds``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b)
        done += 1
    return 2 * n**3 * done / (time.perf_counter() - t0)


def measure(budget: Budget = DEFAULT, matmul_n: int = 1024, train_size: int = 10000) -> Figure:
    loop = TrainingLoop(preset_config(PRESET, [f"data.train_size={train_size}", "data.test_size=128",
                                                f"train.epochs={budget.repeats + 1}",
                                                f"train.max_steps_per_epoch={budget.window}"]), log=lambda _m: None)
    classes = loop.info.num_classes
    flops = {e.size: step_flops(loop.model, e.size, e.batch * e.duplicates, e.duplicates, classes)
             for e in loop.table.entries}
    loop.train_epoch()  # warm-up
    ratios, peaks, achieved = [], [], []
    for r in range(budget.repeats):
        peaks.append(matmul_flops_per_s(matmul_n))
        loop.train_epoch()
        times = loop.last_step_times
        achieved.append(sum(flops[s] * len(t) for s, t in times.items()) / sum(sum(t) for t in times.values()))
        ratios.append(achieved[-1] / peaks[-1])
        print(f"[bench] P6 repeat {r + 1}/{budget.repeats}: training {achieved[-1] / 1e9:.1f} GFLOP/s, "
              f"matmul {peaks[-1] / 1e9:.1f} GFLOP/s ({ratios[-1]:.1%})", flush=True)
    return Figure("P6", "training FLOP/s / fp32 matmul FLOP/s", ratios,
                  detail={"train_flop_per_s": achieved, "matmul_flop_per_s": peaks, "matmul_n": matmul_n,
                          "step_flops_by_size": {str(s): f for s, f in flops.items()}, "preset": PRESET})
