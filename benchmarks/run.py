"""`make bench`: P0-P10, each a median of repeats with its spread and target, in one run.

    python -m benchmarks.run            # every figure: benchmarks/results/bench.json and bench.png
    python -m benchmarks.run p2 p4      # some: benchmarks/results/bench-quick.json (git-ignored)
    python -m benchmarks.run p5 --into bench   # re-measure P5 inside the committed bench.json

Prints one line per repeat while it runs, then the table of figures with whether each target holds.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

from benchmarks import (
    bench_calibration,
    bench_eval,
    bench_flops,
    bench_jpeg_decode,
    bench_loader,
    bench_refusals,
    bench_smoothing,
    bench_step_time,
    bench_throughput,
    paper_scale,
)
from benchmarks.common import RESULTS, write_result
from benchmarks.figure import DEFAULT, Budget, Figure, table

BENCHES: dict[str, Callable[[Budget], list[Figure]]] = {
    "p0": lambda b: [bench_refusals.measure(b)],
    "p1": lambda b: [bench_throughput.measure(b)],
    "p2": lambda b: [bench_step_time.measure("cifar_s28_bplus", b, "P2 B+"),
                     bench_step_time.measure("cifar_s28_dplus", b, "P2 D+")],
    "p3": lambda b: [bench_loader.measure(b)],
    "p4": lambda b: [bench_smoothing.measure(b)],
    "p5": lambda b: [bench_calibration.measure(b), bench_calibration.measure_data_passes(b)],
    "p6": lambda b: [bench_flops.measure(b)],
    "p7": lambda b: [bench_eval.measure_p7(b)],
    "p8": lambda b: [bench_eval.measure_p8(b)],
    "p9": bench_jpeg_decode.measure,
    "p10": lambda b: [paper_scale.measure(b)],  # arithmetic on the committed P5 data, P7 and P8
}


def run(names: list[str], budget: Budget = DEFAULT, name: str | None = None, into: str | None = None) -> list[Figure]:
    """Measure ``names`` (all when empty); write ``<name>.json`` (bench / bench-quick) and its PNG, and print the
    table. ``into``: update that result's figures with these (re-measuring some figures of a committed
    ``bench.json``); each run that contributed is listed under ``runs``."""
    chosen = names or list(BENCHES)
    t0 = time.perf_counter()
    figures = [f for n in chosen for f in BENCHES[n](budget)]
    command = "make bench" if not names else f"python -m benchmarks.run {' '.join(names)}" + (
        f" --into {into}" if into else "")
    this = {"command": command, "figures": [f.key for f in figures], "wall_s": time.perf_counter() - t0,
            "budget": vars(budget), "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    name = into or name or ("bench" if not names else "bench-quick")
    runs, merged = [this], {f.key: f for f in figures}
    if into and (RESULTS / f"{into}.json").exists():
        old = json.loads((RESULTS / f"{into}.json").read_text())
        kept = {k: Figure.from_dict(k, d) for k, d in old["figures"].items() if k not in merged}
        merged = {**kept, **merged}
        earlier = old.get("runs") or [{k: old.get(k) for k in ("command", "wall_s", "budget")} | {"figures": list(old["figures"])}]
        runs = [*earlier, this]
    ordered = sorted(merged.values(), key=lambda f: f.key)
    print(table(ordered))
    write_result(name, {"figures": {f.key: f.to_dict() for f in ordered}, "runs": runs})
    plot(ordered, RESULTS / f"{name}.png")
    return ordered


def plot(figures: list[Figure], path) -> None:
    """Each figure's repeats against its target, one panel per figure (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(figures), figsize=(2.4 * len(figures), 3), squeeze=False)
    for ax, f in zip(axes[0], figures, strict=True):
        ax.plot([0] * len(f.values), f.values, "o", alpha=0.5)
        ax.plot([0], [f.median], "k_", markersize=30)
        if f.target is not None:
            ax.axhline(f.target, color="green" if f.holds else "red", linestyle="--")
        ax.set_title(f.key, fontsize=9)
        ax.set_xticks([])
    fig.suptitle("make bench: repeats (dots), median (bar), target (dashed)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str]) -> int:
    into = None
    if "--into" in argv:
        at = argv.index("--into")
        if at + 1 >= len(argv):
            print("bench: --into expects a result name (e.g. bench), got nothing", file=sys.stderr)
            return 2
        into, argv = argv[at + 1], argv[:at] + argv[at + 2:]
    names = [a.lower() for a in argv]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        print(f"bench: expected names from {list(BENCHES)}, got {unknown}", file=sys.stderr)
        return 2
    run(names, into=into)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
