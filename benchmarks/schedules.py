"""PBT size schedules vs the best static distribution of the Optuna search, at equal training compute.

Both arms run the quickstart space (``search_spaces/quickstart.yaml``: shapes data, ResNet-20, S0=32, B0=32,
sizes 16/24/32/40, the band objective 16..48 calibrated) shrunk to fit about 30 minutes of a 2-core machine:
``--epochs`` epochs of ``--steps`` steps, a population of ``--population`` trials. The static arm is the
regime search as users run it (``mixsize-ray tune``, Optuna TPE, the space's enqueued mixed regimes first,
the fixed control left out); the PBT arm is ``search.scheduler: pbt`` from the same starting points,
perturbing p, alpha and LR every epoch. Same trials x epochs x steps per arm, and the budget solver gives
every step the same S^2*B*D, so the arms spend equal training compute. One seed = one search per arm (the
seed sets the search seed and ``train.seed``). The winner is whichever has the higher mean band objective;
the JSON states the sizes used and the spread, and says so when the difference is within one std.

Writes ``benchmarks/results/schedules.json`` and ``schedules.png`` (each seed's winning PBT schedule, p per
epoch, beside the best static p); ``--quick`` (a < 3 minute smoke: tiny data, 2 epochs, 1 seed) writes
``schedules-quick.*`` (gitignored).

    python -m benchmarks.schedules [--seeds 0 1 2] [--epochs 4] [--steps 150] [--population 2] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

SPACE = Path("search_spaces/quickstart.yaml")
RESULTS = Path("benchmarks/results")
OUT = Path("runs/bench-schedules")


def arm_space(raw: dict[str, Any], arm: str, seed: int, a: argparse.Namespace) -> dict[str, Any]:
    """The quickstart space for one arm and seed, shrunk to the benchmark's size (``a``)."""
    raw = copy.deepcopy(raw)
    raw["name"] = f"bench-{arm}-s{seed}{'-quick' if a.quick else ''}"
    fixed = raw["fixed"]
    fixed["train"].update(epochs=a.epochs, max_steps_per_epoch=a.steps, seed=seed, eval_every=1)
    fixed["tracking"] = {"enabled": False}
    if a.quick:
        fixed["data"].update(train_size=512, test_size=128)
        fixed["train"].update(sweep_sizes=[16, 32, 48], calibrate_batches=2, eval_batch_size=128)
    search = raw["search"]
    search.update(num_samples=a.population, max_concurrent=min(2, a.population), seed=seed,
                  output_dir=str(OUT), enqueue=[e for e in search.get("enqueue", []) if e.get("mode") != "fixed"])
    raw["space"]["mode"] = [m for m in raw["space"].get("mode", ["B+", "D+"]) if m != "fixed"]
    if arm == "pbt":
        search.update(scheduler="pbt", pbt={"perturbation_interval": 1, "quantile_fraction": 0.5})
    return raw


def run_arm(raw: dict[str, Any]) -> tuple[Any, float]:
    from mixsize_ray.tune.search import load_search_space, run_search

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "space.yaml"
        p.write_text(yaml.safe_dump(raw, sort_keys=False))
        spec = load_search_space(p)
        t0 = time.perf_counter()
        summary = run_search(spec)
    return summary, time.perf_counter() - t0


def static_result(summary: Any, objective: str) -> dict[str, Any]:
    best = summary.report.best
    values = {r["trial"]: r.get(objective) for r in summary.report.rows}
    if best is None:
        return {"best": None, "trials": values}
    ua = best.user_attrs
    return {"best": float(best.values[0]), "trial": best.number, "mode": ua["config"]["regime"]["mode"],
            "probs": dict(zip(ua["sizes"], ua["probs"], strict=True)), "trials": values,
            "folder": str(summary.experiment_dir)}


def pbt_result(summary: Any, objective: str) -> dict[str, Any]:
    rep = summary.report
    values = {r["trial"]: r.get(objective) for r in rep.rows}
    if rep.best is None:
        return {"best": None, "trials": values}
    b = rep.best
    return {"best": float(b[objective]), "trial": b["trial"], "mode": b["mode"], "mutations": b["mutations"],
            "schedule": b["schedule"], "trials": values, "folder": str(summary.experiment_dir)}


def _stats(xs: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0,
            "min": min(xs), "max": max(xs)}


def verdict(static: list[float], pbt: list[float]) -> dict[str, Any]:
    """Which arm wins on the mean band objective, and whether the gap exceeds the larger std.

    Example:
        >>> verdict([0.5, 0.6], [0.7, 0.72])["winner"], verdict([0.5], [0.5])["winner"]
        ('pbt', 'tie')
    """
    s, p = _stats(static), _stats(pbt)
    diff = p["mean"] - s["mean"]
    winner = "tie" if diff == 0 else ("pbt" if diff > 0 else "static")
    return {"static": s, "pbt": p, "pbt_minus_static": diff, "winner": winner,
            "beyond_spread": abs(diff) > max(s["std"], p["std"])}


def figure(per_seed: list[dict[str, Any]], path: Path) -> Path:
    from mixsize_ray.tune.schedules import plot, row

    panels = {}
    for r in per_seed:
        if r["pbt"].get("schedule"):
            panels[f"seed {r['seed']} PBT (best)"] = r["pbt"]["schedule"]
        if r["static"].get("probs"):
            probs = {int(k): v for k, v in r["static"]["probs"].items()}
            panels[f"seed {r['seed']} static (best)"] = [row(e, "static", "static", probs, {}) for e in
                                                         range(len(r["pbt"].get("schedule") or [0, 0]))]
    return plot(panels, path, "winning size schedules: PBT vs the best static p (band objective)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.schedules")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="default: 0 1 2")
    ap.add_argument("--epochs", type=int, default=4, help="epochs per trial; default: 4")
    ap.add_argument("--steps", type=int, default=150, help="max steps per epoch; default: 150")
    ap.add_argument("--population", type=int, default=2, help="trials per search (PBT population); default: 2")
    ap.add_argument("--quick", action="store_true", help="a < 3 minute smoke (tiny data, 2 epochs of 4 steps, "
                    "1 seed), writes schedules-quick.*; default: off")
    a = ap.parse_args(argv)
    if a.quick:
        a.seeds, a.epochs, a.steps = a.seeds[:1], 2, 4
    import ray

    from mixsize_ray.tune.spec import load_space

    base = load_space(SPACE)
    objective = base.objectives[0].name  # the band objective
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    t0 = time.perf_counter()
    per_seed = []
    try:
        for seed in a.seeds:
            entry: dict[str, Any] = {"seed": seed}
            for arm, read in (("static", static_result), ("pbt", pbt_result)):
                summary, wall = run_arm(arm_space(base.raw, arm, seed, a))
                entry[arm] = {**read(summary, objective), "wall_s": round(wall, 1)}
                print(f"[bench] seed {seed} {arm}: {objective} = {entry[arm]['best']} ({wall:.0f} s)", flush=True)
            per_seed.append(entry)
    finally:
        if started:
            ray.shutdown()
    ok = [r for r in per_seed if r["static"]["best"] is not None and r["pbt"]["best"] is not None]
    suffix = "-quick" if a.quick else ""
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "schedules", "quick": a.quick, "space": str(SPACE), "objective": objective,
        "sizing": {"seeds": a.seeds, "epochs": a.epochs, "max_steps_per_epoch": a.steps, "population": a.population,
                   "trained_epochs_per_arm": a.population * a.epochs, "pbt_perturbation_interval": 1,
                   "note": "shrunk from the quickstart space (6 epochs x 200 steps) to fit ~30 min on 2 cores; "
                           "the enqueued fixed control is left out of both arms"},
        "verdict": verdict([r["static"]["best"] for r in ok], [r["pbt"]["best"] for r in ok]) if ok else None,
        "per_seed": per_seed, "wall_s": round(time.perf_counter() - t0, 1),
    }
    path = RESULTS / f"schedules{suffix}.json"
    path.write_text(json.dumps(doc, indent=1, default=str))
    png = figure(per_seed, RESULTS / f"schedules{suffix}.png")
    v = doc["verdict"]
    if v:
        print(f"[bench] {objective}: static {v['static']['mean']:.4f} +- {v['static']['std']:.4f}, PBT "
              f"{v['pbt']['mean']:.4f} +- {v['pbt']['std']:.4f}: winner {v['winner']}"
              f"{'' if v['beyond_spread'] else ' (within the spread)'}")
    print(f"[bench] wrote {path} and {png} in {doc['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
