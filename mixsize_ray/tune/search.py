"""The search driver: experiment folder, Optuna study, MLflow parent run, Tuner (or Tuner.restore), report.

Layout of one search (``<search.output_dir>/<name>-<YYYYmmdd-HHMMSS>/``, also Tune's experiment folder)::

    search.json    study name, storage URL, parent run id, num_samples, fingerprint of the space
    space.yaml     the search-space YAML as given
    optuna.db      the Optuna study (default storage; search.storage may name any RDB URL instead)
    trials/        Ray Train runs of the trials (checkpoints, sweep.json), one folder per trial
    trials.csv, best.yaml, curves.png, pareto.png, importances.json   (written at the end)

``resume=True`` picks the newest search of the same space name (``-smoke`` searches apart), checks the
space is unchanged, and continues it with ``Tuner.restore`` and the same study.

Example:
    >>> summary = run_search("search_spaces/quickstart.yaml", smoke=True)  # doctest: +SKIP
    >>> summary.report.best.number, summary.experiment_dir  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mixsize_ray.errors import ConfigError
from mixsize_ray.tune.spec import SearchSpec, enqueue_params, load_space, parse_space, with_search

META = "search.json"
TRIAL_CPU = 0.01  # the Tune-side driver of a trial: a token CPU, so workers of concurrent trials fit
SMOKE_FIXED = {
    "data": {"train_size": 512, "test_size": 256, "num_workers": 0},
    "train": {"epochs": 1, "max_steps_per_epoch": 4, "calibrate_batches": 2, "eval_batch_size": 128},
    "ray": {"num_workers": 1},
}
SMOKE_SEARCH = {"num_samples": 4, "max_concurrent": 2}


@dataclass
class SearchSummary:
    experiment_dir: Path
    study_name: str
    storage_url: str
    parent_run_id: str | None
    tracking_uri: str | None
    report: Any
    num_trials: int


def smoke_raw(raw: dict[str, Any], spec: SearchSpec) -> dict[str, Any]:
    """The space shrunk to a few-minute search: tiny data, 1 epoch of 4 steps, 4 trials, a minimal sweep."""
    raw = json.loads(json.dumps(raw))
    raw["name"] = f"{spec.name}-smoke"
    fixed = raw.setdefault("fixed", {}) or {}
    raw["fixed"] = fixed
    for sec, values in SMOKE_FIXED.items():
        fixed[sec] = {**(fixed.get(sec) or {}), **values}
    if spec.fixed.data.name != "shapes":
        fixed["data"].pop("train_size")
        fixed["data"].pop("test_size")
    sweep = {spec.base[0], min(spec.simplex.sizes)} | {o.sizes[0] for o in spec.objectives if o.sizes}
    fixed["train"]["sweep_sizes"] = sorted(sweep)
    raw["search"] = {**(raw.get("search") or {}), **SMOKE_SEARCH}
    if spec.search.pbt is not None:  # one perturbation at least
        fixed["train"]["epochs"] = spec.search.pbt.perturbation_interval + 1
    return raw


def load_search_space(path: str | Path, overrides: list[str] | None = None, smoke: bool = False,
                      num_samples: int | None = None, output_dir: str | None = None) -> SearchSpec:
    """Validate the space (and its smoke variant); all bad input fails here, before anything starts."""
    spec = load_space(path, overrides)
    if smoke:
        spec = parse_space(smoke_raw(spec.raw, spec), overrides, source=spec.source)
    if num_samples is not None:
        if num_samples < 1:
            raise ConfigError("--num-samples", "an integer >= 1", num_samples)
        spec = with_search(spec, num_samples=num_samples)
    if output_dir is not None:
        spec = with_search(spec, output_dir=output_dir)
    return spec


def fingerprint(spec: SearchSpec) -> str:
    """What must not change between a search and its ``--resume``."""
    doc = json.dumps({"raw": spec.raw, "fixed": spec.fixed.to_dict()}, sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def _experiments(root: Path, name: str) -> list[Path]:
    pat = re.compile(re.escape(name) + r"-\d{8}-\d{6}(-\d+)?$")
    return sorted((p for p in root.glob(f"{name}-*") if pat.match(p.name) and (p / META).is_file()),
                  key=lambda p: (p / META).stat().st_mtime)


def resolve_experiment(spec: SearchSpec, resume: bool) -> tuple[Path, dict[str, Any]]:
    """(experiment folder, saved meta or {}) for a new search or the newest one to resume."""
    root = Path(spec.search.output_dir).expanduser().resolve()
    if resume:
        found = _experiments(root, spec.name)
        if not found:
            raise ConfigError("--resume", f"an earlier search '{spec.name}-<time>' under {root}", None,
                              hint="none found; start one without --resume")
        exp = found[-1]
        meta = json.loads((exp / META).read_text())
        if meta.get("fingerprint") != fingerprint(spec):
            raise ConfigError("--resume", f"the search space {exp.name} was started with", "a changed space",
                              hint="start a new search without --resume")
        return exp, meta
    stamp = time.strftime("%Y%m%d-%H%M%S")
    exp, i = root / f"{spec.name}-{stamp}", 1
    while exp.exists():
        i += 1
        exp = root / f"{spec.name}-{stamp}-{i}"
    return exp, {}


def tracking_uri_of(spec: SearchSpec, saved: str | None = None) -> str | None:
    """The resolved MLflow URI (``saved``: the one a resumed search started with), checked to answer; None
    when the space turns tracking off."""
    t = spec.fixed.tracking
    if not t.enabled:
        return None
    from mixsize_ray.tracking.uri import check_reachable, resolve_tracking_uri

    uri = saved or resolve_tracking_uri(t.uri)
    check_reachable(uri, t.timeout_s)
    return uri


def connect_for_search(spec: SearchSpec) -> bool:
    """Use the running Ray, ``ray.address``/RAY_ADDRESS, or start a local cluster big enough for
    ``max_concurrent`` trials (through :func:`mixsize_ray.train.cluster.connect`, the one ``ray.init``).
    Workers' and Ray Train's own logs stay in each trial's folder and Ray's session logs; the console shows
    one line per trial (tune/progress.py) and the summary. Returns True when this call started Ray."""
    from mixsize_ray.train.cluster import ClusterRequest, check_address, connect

    r = spec.fixed.ray
    address = r.address or os.environ.get("RAY_ADDRESS")
    if address:
        check_address(address)
    per_trial = r.num_workers * r.cpus_per_worker + TRIAL_CPU
    return connect(ClusterRequest(address, spec.search.max_concurrent * per_trial, quiet=True,
                                  temp_prefix="mixsize-tune-"))


def trial_name(trial: Any) -> str:
    return f"trial_{int(trial.config['trial_number']):04d}"


def _tuner(spec: SearchSpec, exp: Path, meta: dict[str, Any], ctx: Any, storage: Any, restore: bool):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from mixsize_ray.tune.orphan_groups import OrphanGroupReaper
    from mixsize_ray.tune.progress import TrialLines
    from mixsize_ray.tune.searcher import RegimeSearch, make_sampler
    from mixsize_ray.tune.space import RegimeSpace
    from mixsize_ray.tune.trainable import run_trial

    trainable = tune.with_resources(tune.with_parameters(run_trial, spec=spec, ctx=ctx), {"cpu": TRIAL_CPU})
    if restore:
        return tune.Tuner.restore(str(exp), trainable, resume_unfinished=True, resume_errored=False,
                                  restart_errored=False)
    objs = spec.objectives
    first_start = not meta.get("started")
    searcher = RegimeSearch(
        RegimeSpace(spec, ctx),
        metric=[o.key for o in objs] if spec.multi_objective else objs[0].key,
        mode=[o.mode for o in objs] if spec.multi_objective else objs[0].mode,
        points_to_evaluate=[enqueue_params(spec, e) for e in spec.search.enqueue] if first_start else None,
        sampler=make_sampler(spec), study_name=meta["study_name"], storage=storage,
    )
    scheduler = None
    if spec.search.asha:
        a = spec.search.asha
        scheduler = ASHAScheduler(metric=a["metric"], mode="max", time_attr="training_iteration",
                                  max_t=spec.fixed.train.epochs,
                                  grace_period=a["grace_period"], reduction_factor=a["reduction_factor"])
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=meta["num_samples"],
                                    max_concurrent_trials=spec.search.max_concurrent,
                                    trial_name_creator=trial_name, trial_dirname_creator=trial_name),
        run_config=tune.RunConfig(name=exp.name, storage_path=str(exp.parent),
                                  failure_config=tune.FailureConfig(max_failures=spec.search.max_failures), verbose=0,
                                  callbacks=[TrialLines(spec), OrphanGroupReaper()]),
    )


def open_experiment(spec: SearchSpec, resume: bool, num_samples_given: bool = False):
    """Everything before the first trial: the experiment folder and ``search.json``, the Optuna storage,
    the tracking URI and the MLflow parent run. Bad input raises ConfigError here. Returns
    ``(folder, meta, storage, parent run or None)``."""
    import optuna

    from mixsize_ray.tune.parent_run import ParentRun
    from mixsize_ray.tune.searcher import open_storage

    exp, meta = resolve_experiment(spec, resume)
    if resume and num_samples_given and spec.search.num_samples != meta["num_samples"]:
        raise ConfigError("--num-samples", f"the resumed search's own {meta['num_samples']} (or leave it out)",
                          spec.search.num_samples)
    url = meta.get("storage_url") or spec.search.storage or f"sqlite:///{exp / 'optuna.db'}"
    if spec.search.storage is not None and not resume:
        open_storage(url)  # a bad URL fails before the experiment folder exists
    uri = tracking_uri_of(spec, meta.get("tracking_uri"))
    try:
        exp.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError("search.output_dir", "a writable folder", str(exp.parent), hint=e.strerror) from None
    storage = open_storage(url)
    if not meta:
        if exp.name in optuna.study.get_all_study_names(storage):
            raise ConfigError("search.storage", "a storage without a study of this name", exp.name)
        meta = {"name": exp.name, "study_name": exp.name, "storage_url": url, "num_samples": spec.search.num_samples,
                "fingerprint": fingerprint(spec), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "tracking_uri": uri, "parent_run_id": None}
        (exp / "space.yaml").write_text(spec.source or yaml.safe_dump(spec.raw, sort_keys=False))
    parent = None
    if uri is not None:
        parent = ParentRun.open(uri, spec.fixed.tracking.experiment, exp.name,
                                run_id=meta.get("parent_run_id"),
                                tags={"mixsize.study_name": meta["study_name"], "mixsize.storage": url})
        meta["parent_run_id"] = parent.run_id
        parent.log_params(search_params(spec, meta))
        parent.log_artifacts([exp / "space.yaml"])
    (exp / META).write_text(json.dumps(meta, indent=2))
    return exp, meta, storage, parent


def run_search(spec: SearchSpec, resume: bool = False, num_samples_given: bool = False) -> SearchSummary:
    """Run (or resume) a search to ``num_samples`` trials and write its report; see the module docstring."""
    import optuna
    from ray import tune

    from mixsize_ray.tune.space import TrialContext

    exp, meta, storage, parent = open_experiment(spec, resume, num_samples_given)
    ctx = TrialContext(exp.name, str(exp / "trials"), meta["tracking_uri"], meta["parent_run_id"])
    started_ray = connect_for_search(spec)
    try:
        restore = resume and tune.Tuner.can_restore(str(exp))
        if resume and not restore:  # killed before Tune's first checkpoint: re-use what Optuna handed out
            from mixsize_ray.tune.searcher import requeue_orphans

            requeue_orphans(storage, meta["study_name"], set())
        if spec.search.pbt is not None:  # Population Based Training: no Optuna study (tune/pbt_search.py)
            from mixsize_ray.tune.pbt_search import pbt_tuner

            tuner = pbt_tuner(spec, exp, ctx, TRIAL_CPU, restore)
        else:
            tuner = _tuner(spec, exp, meta, ctx, storage, restore)
        meta["started"] = True
        (exp / META).write_text(json.dumps(meta, indent=2))
        grid = tuner.fit()
    except BaseException:
        if parent is not None:
            parent.finish("KILLED")  # `--resume` sets it RUNNING again
        raise
    finally:
        if started_ray:
            from mixsize_ray.train.cluster import disconnect

            disconnect()
    if spec.search.pbt is not None:
        from mixsize_ray.tune.pbt_search import finish_pbt

        rep = finish_pbt(spec, grid, exp, ctx, parent)
        return SearchSummary(exp, meta["study_name"], meta["storage_url"], meta.get("parent_run_id"),
                             meta.get("tracking_uri"), rep, len(grid))
    study = optuna.load_study(study_name=meta["study_name"], storage=storage)
    summary = finish(spec, study, exp, meta, parent)
    summary.num_trials = len(grid)
    return summary


def search_params(spec: SearchSpec, meta: dict[str, Any]) -> dict[str, Any]:
    """What the parent run records as params."""
    s = spec.search
    return {
        "search.sizes": list(spec.simplex.sizes), "search.floor": spec.simplex.floor,
        "search.allow_drop": spec.simplex.allow_drop, "search.base": list(spec.base), "search.modes": spec.modes,
        "search.objectives": [o.name for o in spec.objectives],
        "search.constraints": [c.name for c in spec.constraints], "search.sampler": s.sampler,
        "search.seed": s.seed, "search.trial_seed": s.trial_seed, "search.num_samples": meta["num_samples"],
        "search.max_concurrent": s.max_concurrent, "search.asha": s.asha,
        **({"search.scheduler": s.scheduler, "search.pbt": dict(vars(s.pbt))} if s.pbt is not None else {}), "search.study_name": meta["study_name"],
        "search.storage": meta["storage_url"],
        **{f"search.space.{d.key}": d.candidates() if d.kind == "categorical" else
           (d.value if d.kind == "fixed" else f"{d.kind}[{d.low}, {d.high}]{' log' if d.log else ''}")
           for d in spec.dims},
    }


def search_page(spec: SearchSpec, exp: Path, meta: dict[str, Any]) -> Path | None:
    """``report.html`` of the search (its trials' curves, Pareto front, importances) beside the other files;
    None (with the reason printed) when MLflow cannot give the runs back."""
    from mixsize_ray.errors import ConfigError
    from mixsize_ray.report.page import write_report
    from mixsize_ray.report.runs import Selection, select

    try:
        runs, search = select(meta["tracking_uri"], Selection(search=exp.name),
                              experiment=spec.fixed.tracking.experiment)
    except ConfigError as e:
        print(f"[mixsize-ray] no report.html: {e}", flush=True)
        return None
    if not runs:
        return None
    return write_report(runs, search, f"mixsize-ray search {exp.name}", exp / "report.html")


def finish(spec: SearchSpec, study: Any, exp: Path, meta: dict[str, Any], parent: Any) -> SearchSummary:
    """Report files, MLflow parent (children of untrained trials, best values, artifacts), summary."""
    from mixsize_ray.tracking import keys
    from mixsize_ray.tune.report import build_report

    rep = build_report(spec, study, exp, exp.name)
    if parent is not None:
        for t in study.get_trials(deepcopy=False):
            reason = t.user_attrs.get("infeasible_reason")
            if reason:
                parent.log_infeasible_child(t.number, {**t.params, "trial_number": t.number}, reason)
        if rep.best is not None:
            parent.log_metrics({keys.best_key(o.name): v for o, v in zip(spec.objectives, rep.best.values, strict=True)})
            parent.client.set_tag(parent.run_id, "best_trial", str(rep.best.number))
        for obj, imp in rep.importances.items():
            if isinstance(imp, dict):
                parent.log_metrics({keys.importance_key(obj, k): v["importance"] for k, v in imp["importances"].items()
                                    if isinstance(v["importance"], float)})
        parent.log_artifacts([exp / META, *rep.paths.values()])
        html = search_page(spec, exp, meta)  # reads the trials table and importances just logged
        if html is not None:
            parent.log_artifacts([html])
            rep.paths["report_html"] = html
        parent.finish()
    return SearchSummary(exp, meta["study_name"], meta["storage_url"], meta.get("parent_run_id"),
                         meta.get("tracking_uri"), rep, 0)
