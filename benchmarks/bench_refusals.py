"""P0: how fast `mixsize-ray` refuses bad input (target: median <= 5 s per case on this machine).

A refusal should answer before torch loads: the suite checks *that* every case of the bad-input corpus
(tests/cli_corpus/bad_inputs.yaml) is refused in one line with exit 2, and never *how fast*, because this
machine's speed varies two-fold from day to day. Here each case runs alone (nothing else in parallel),
``repeats`` times, cases interleaved; the figure's values are the per-case medians in seconds, so its median
is the typical case and its max the slowest (both in ``detail``, with the per-case medians).

Example:
    >>> summary({"a": [1.0, 3.0, 2.0], "b": [4.0, 5.0, 6.0]})
    ({'a': 2.0, 'b': 5.0}, 'b')
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from benchmarks.figure import DEFAULT, Budget, Figure
from tests.cli_corpus.runner import CASES, make_checkpoint, run_case


def summary(seconds: dict[str, list[float]]) -> tuple[dict[str, float], str]:
    """Per-case medians and the slowest case's id."""
    medians = {cid: statistics.median(v) for cid, v in seconds.items()}
    return medians, max(medians, key=medians.__getitem__)


def measure(budget: Budget = DEFAULT, cases: list[str] | None = None) -> Figure:
    """Time ``cases`` (all by default) ``budget.repeats`` times each; a case that is not refused (exit 2) fails
    the benchmark, since its time would not be a refusal's."""
    chosen = cases or sorted(CASES)
    seconds: dict[str, list[float]] = {cid: [] for cid in chosen}
    with tempfile.TemporaryDirectory(prefix="bench-refusals-") as tmp:
        root = Path(tmp).resolve()
        checkpoint = make_checkpoint(root / "ckpt-root")
        for r in range(budget.repeats):
            for cid in chosen:
                folder = root / f"{cid}-{r}"
                folder.mkdir()
                res = run_case(CASES[cid], folder, checkpoint)
                if res["rc"] != 2:
                    raise RuntimeError(f"bench: case {cid} was not refused (exit {res['rc']}): {res['stderr'][-500:]}")
                seconds[cid].append(res["s"])
            print(f"P0 refusals repeat {r + 1}/{budget.repeats}: median {statistics.median(s[-1] for s in seconds.values()):.2f} s "
                  f"over {len(chosen)} cases", flush=True)
    medians, slowest = summary(seconds)
    return Figure("P0", "bad-input refusal, s per case (median of repeats; median over cases)",
                  list(medians.values()), target=5.0, at_least=False, unit=" s",
                  detail={"cases": len(chosen), "repeats": budget.repeats, "slowest_case": slowest,
                          "slowest_median_s": medians[slowest], "per_case_median_s": medians})
