"""P2: per-step time across sizes, max/min of the per-size medians, for the B+ and D+ presets (target <= 1.15).

MixSize's promise is a constant cost per step: S^2 * B * D is (about) the same for every size. Each repeat is
one epoch of ``budget.window`` steps per size of the preset (sizes are drawn by the schedule, so they are
interleaved step by step); its figure is the largest per-size median step time over the smallest. Step times
include the loader (the preset's ``data.num_workers``), as a user's run pays it.
"""

from __future__ import annotations

import statistics

from benchmarks.common import preset_config
from benchmarks.figure import DEFAULT, Budget, Figure
from mixsize_ray.train.loop import TrainingLoop


def spread(step_times: dict[int, list[float]]) -> tuple[float, dict[int, float]]:
    """``(max/min of the per-size medians, {size: median})`` of one epoch's step times by size.

    Example:
        >>> spread({16: [0.10, 0.11, 0.30], 32: [0.12, 0.12]})
        (1.0909090909090908, {16: 0.11, 32: 0.12})
    """
    medians = {s: statistics.median(t) for s, t in sorted(step_times.items())}
    return max(medians.values()) / min(medians.values()), medians


def measure(preset: str, budget: Budget = DEFAULT, key: str = "P2", train_size: int = 10000) -> Figure:
    sizes = len(preset_config(preset, []).regime.sizes)
    cfg = preset_config(preset, [f"data.train_size={train_size}", "data.test_size=128",
                                 f"train.epochs={budget.repeats + 1}",
                                 f"train.max_steps_per_epoch={budget.window * sizes}"])
    loop = TrainingLoop(cfg, log=lambda _m: None)
    loop.train_epoch()  # warm-up
    ratios, medians = [], []
    for r in range(budget.repeats):
        loop.train_epoch()
        ratio, per_size = spread(loop.last_step_times)
        ratios.append(ratio)
        medians.append({str(s): m for s, m in per_size.items()})
        print(f"[bench] {key} {preset} repeat {r + 1}/{budget.repeats}: max/min {ratio:.3f} "
              + " ".join(f"{s}px {m * 1e3:.0f}ms" for s, m in per_size.items()), flush=True)
    table = [[e.size, e.batch, e.duplicates, e.prob] for e in loop.table.entries]
    return Figure(key, f"step time max/min over sizes, {cfg.regime.mode} ({preset})", ratios, target=1.15,
                  at_least=False, detail={"median_step_s_by_size": medians, "table_S_B_D_p": table,
                                          "steps_per_epoch": loop.steps_per_epoch})
