"""``search.scheduler: pbt``: the Tuner (Population Based Training over a seeded initial population) and
what the search leaves behind.

The population is drawn by :func:`~mixsize_ray.tune.perturb.initial_population` (``search.enqueue`` first,
then random points of the same space, seeded by ``search.pbt.seed``) and handed to Tune's
BasicVariantGenerator as a grid over the members: Optuna's define-by-run searcher is not used (PBT
rewrites configs mid-run, which a sampler's study cannot represent); the static search is untouched.

Files (beside ``search.json`` and ``space.yaml`` in the search folder): ``schedules.json`` (per trial: its
final metrics and the schedule it followed, one row per epoch), ``schedules.png`` (p per epoch of every
trial), ``trials.csv`` and ``best.yaml`` (the best trial's final config: its LAST p; the schedule is in
``schedules.json``). The MLflow parent run gets the same files and ``best/<objective>``.

Example:
    >>> from mixsize_ray.tune.spec import load_space, parse_space
    >>> spec = load_space("search_spaces/quickstart.yaml")
    >>> spec = parse_space({**spec.raw, "search": {**spec.raw["search"], "scheduler": "pbt"}})
    >>> [m["regime.mode"] for m in initial_population(spec)]
    ['D+', 'B+']
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mixsize_ray.tune.orphan_groups import OrphanGroupReaper
from mixsize_ray.tune.pbt_trainable import CLOCK, run_pbt_trial
from mixsize_ray.tune.perturb import Explorer, initial_population, member_params
from mixsize_ray.tune.progress import SegmentLines
from mixsize_ray.tune.schedules import FILE as SCHEDULE_FILE
from mixsize_ray.tune.schedules import mutations, plot
from mixsize_ray.tune.space import TrialContext, build_trial
from mixsize_ray.tune.spec import SearchSpec


@dataclass
class PBTReport:
    """What a PBT search found: per trial its final report and schedule; the best trial by the first
    objective; the files written."""

    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    paths: dict[str, Path] = field(default_factory=dict)


def pbt_trial_name(trial: Any) -> str:
    return f"trial_{int(trial.config['trial_number']):04d}"


def pbt_tuner(spec: SearchSpec, exp: Path, ctx: TrialContext, trial_cpu: float, restore: bool):
    """The Tuner of a PBT search (or ``Tuner.restore`` of one)."""
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining

    trainable = tune.with_resources(tune.with_parameters(run_pbt_trial, spec=spec, ctx=ctx), {"cpu": trial_cpu})
    if restore:
        return tune.Tuner.restore(str(exp), trainable, resume_unfinished=True, resume_errored=False,
                                  restart_errored=False)
    o = spec.search.pbt
    scheduler = PopulationBasedTraining(
        time_attr=CLOCK, metric=o.metric, mode=o.mode, perturbation_interval=o.perturbation_interval,
        quantile_fraction=o.quantile_fraction, resample_probability=0.0, hyperparam_mutations={},
        custom_explore_fn=Explorer(spec), synch=True)
    population = initial_population(spec)
    return tune.Tuner(
        trainable,
        param_space={"trial_number": tune.grid_search([m["trial_number"] for m in population]),
                     **{k: tune.sample_from(lambda s, k=k: population[s.config.trial_number][k])
                        for k in population[0] if k != "trial_number"}},
        tune_config=tune.TuneConfig(scheduler=scheduler, num_samples=1, max_concurrent_trials=spec.search.max_concurrent,
                                    trial_name_creator=pbt_trial_name, trial_dirname_creator=pbt_trial_name),
        run_config=tune.RunConfig(name=exp.name, storage_path=str(exp.parent),
                                  failure_config=tune.FailureConfig(max_failures=spec.search.max_failures), verbose=0,
                                  callbacks=[SegmentLines(spec), OrphanGroupReaper()],
                                  stop={CLOCK: spec.fixed.train.epochs},  # the last report is never perturbed
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=None)),
    )


def _schedule_of(result: Any) -> list[dict[str, Any]]:
    ckpt = result.checkpoint
    if ckpt is None:
        return []
    with ckpt.as_directory() as d:
        f = Path(d) / SCHEDULE_FILE
        return json.loads(f.read_text()) if f.is_file() else []


def finish_pbt(spec: SearchSpec, grid: Any, exp: Path, ctx: TrialContext, parent: Any) -> PBTReport:
    """``schedules.json``, ``schedules.png``, ``trials.csv``, ``best.yaml``; the parent run's best values and
    artifacts."""
    from mixsize_ray.tracking import keys

    rows, schedules = [], {}
    for r in grid:
        m = r.metrics or {}
        number = int(Path(r.path).name.rsplit("_", 1)[-1])
        name = f"trial_{number:04d}"
        sched = _schedule_of(r)
        schedules[name] = sched
        ok = r.error is None and m.get("final") == 1 and not m.get("infeasible")
        rows.append({"trial": number, "status": "ok" if ok else ("error" if r.error else "incomplete"),
                     "mode": r.config.get("regime.mode", spec.dim("regime.mode").value),
                     **{o.name: m.get(o.key) for o in spec.objectives},
                     "mutations": mutations(sched), "last_probs": r.config.get("probs"),
                     "config": r.config, "schedule": sched})
    first = spec.objectives[0]
    done = [x for x in rows if x["status"] == "ok" and isinstance(x[first.name], int | float)]
    best = (max if first.mode == "max" else min)(done, key=lambda x: x[first.name]) if done else None
    paths: dict[str, Path] = {}
    paths["schedules_json"] = exp / "schedules.json"
    paths["schedules_json"].write_text(json.dumps({"best_trial": best["trial"] if best else None, "trials": rows},
                                                  indent=1, default=str))
    paths["schedules_png"] = plot(schedules, exp / "schedules.png", f"PBT size schedules: {exp.name}")
    paths["trials_csv"] = exp / "trials.csv"
    with paths["trials_csv"].open("w", newline="") as f:
        cols = ["trial", "status", "mode", *[o.name for o in spec.objectives], "mutations", "last_probs"]
        w = csv.DictWriter(f, cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    if best is not None:
        plan = build_trial(spec, ctx, member_params(spec, {**best["config"], "trial_number": best["trial"]}),
                           best["trial"])
        raw = plan.config.to_dict()
        for k in ("parent_run_id", "run_name"):
            raw["tracking"].pop(k, None)
        raw["train"].pop("output_dir", None)
        raw["train"]["name"] = f"{exp.name}-best"
        paths["best_yaml"] = exp / "best.yaml"
        paths["best_yaml"].write_text(f"# PBT trial {best['trial']}'s last config; its schedule: schedules.json\n"
                                      + yaml.safe_dump(raw, sort_keys=False))
    if parent is not None:
        if best is not None:
            parent.log_metrics({keys.best_key(o.name): best[o.name] for o in spec.objectives
                                if isinstance(best[o.name], int | float)})
            parent.client.set_tag(parent.run_id, "best_trial", str(best["trial"]))
        parent.log_artifacts(list(paths.values()))
        parent.finish()
    return PBTReport(rows, best, paths)


def pbt_text(summary: Any) -> str:
    """What ``mixsize-ray tune`` prints after a PBT search."""
    rep = summary.report
    lines = [f"== PBT search {summary.experiment_dir.name}: {len(rep.rows)} trials"]
    for r in rep.rows:
        vals = ", ".join(f"{k}={v:.4f}" for k, v in r.items() if k.startswith(("top1", "band", "steps"))
                         and isinstance(v, float))
        lines.append(f"  trial {r['trial']:04d} {r['status']:<10} {r['mode']} {vals} mutations={r['mutations']}")
    if rep.best is not None:
        lines.append(f"== best: trial {rep.best['trial']} (schedule in schedules.json, figure schedules.png)")
    lines.append("files: " + ", ".join(str(p) for p in rep.paths.values()))
    return "\n".join(lines)
