"""One PBT trial: a Tune function trainable that trains in segments of ``perturbation_interval`` epochs and
reports a Tune checkpoint at each segment end, so Population Based Training can exploit and explore.

Each segment is one :func:`~mixsize_ray.train.launch.launch` of the trial's current Ray Train run with
``Start(stop_after_epoch=...)`` (the LR schedule still spans ``train.epochs``; the worker validates at the
segment's end); the next segment re-launches the same run, which resumes from its own last checkpoint.
At the end of a segment the trial reports the last epoch's metrics (``epochs_done`` is PBT's clock) and a
Tune checkpoint: the Train checkpoint (model, optimizer, smoother, epoch, global step, RNG, BN cache,
config) plus ``schedule.json`` (:mod:`mixsize_ray.tune.schedules`).

When Tune starts the trial from a checkpoint (``tune.get_checkpoint()``: PBT's exploit hands over the
donor's, with the perturbed config; or the trial's own after a pause), a NEW Train run
``trial_<n>-e<next epoch>`` begins from it through ``Start(checkpoint=...)``: the one place a regime (p),
alpha or LR may differ on resume (``may_change``, checked in preflight; a plain re-run is still refused).
It continues the trial's own MLflow run (``pbt_trial.json`` in the Tune trial folder keeps its id) and
inherits the donor's schedule rows, so the logged schedule is what the weights were actually trained with.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mixsize_ray.errors import ConfigError, RunFailed
from mixsize_ray.tune.perturb import member_params
from mixsize_ray.tune.schedules import FILE as SCHEDULE_FILE
from mixsize_ray.tune.schedules import log_schedule, row
from mixsize_ray.tune.space import TrialContext, build_trial
from mixsize_ray.tune.spec import SearchSpec
from mixsize_ray.tune.trainable import TrialFailed, final_report, interim_report, worst_report

MAY_CHANGE = ("regime.probs", "regime.sizes", "optim.lr", "optim.smoothing_alpha")
TRIAL_FILE = "pbt_trial.json"  # in the Tune trial folder: the trial's MLflow run id
CLOCK = "epochs_done"  # PBT's time attribute


def segment_end(next_epoch: int, interval: int, epochs: int) -> int:
    """The last epoch of the segment starting at ``next_epoch``: the next multiple of ``interval`` minus 1.

    Example:
        >>> [segment_end(e, 2, 5) for e in range(5)]
        [1, 1, 3, 3, 4]
    """
    return min(epochs - 1, (next_epoch // interval + 1) * interval - 1)


def run_name_for(cfg: Any, base: str, next_epoch: int) -> str:
    """A Train run name for a start at ``next_epoch``: ``<base>-e<epoch>``, or with ``-<k>`` when a run of that
    name exists with another config (then it is not this start's run)."""
    from mixsize_ray.config import config_from_dict
    from mixsize_ray.train.preflight import check_resume_compatible, storage_path

    for k in range(1, 100):
        name = f"{base}-e{next_epoch:03d}" + (f"-{k}" if k > 1 else "")
        raw = cfg.to_dict()
        raw["train"]["name"] = name
        candidate = config_from_dict(raw)
        try:
            check_resume_compatible(candidate, storage_path(candidate))
            return name
        except ConfigError:
            continue
    raise RuntimeError(f"no free run name for {base} at epoch {next_epoch}")


def _read_start(ckpt: Any) -> tuple[str, list[dict[str, Any]], int]:
    """(local folder, inherited schedule rows, last finished epoch) of a handed-over Tune checkpoint."""
    folder = ckpt.path
    if not Path(folder).is_dir():  # remote storage: a local copy
        folder = tempfile.mkdtemp(prefix="mixsize-pbt-start-")
        ckpt.to_directory(folder)
    f = Path(folder)
    rows = json.loads((f / SCHEDULE_FILE).read_text()) if (f / SCHEDULE_FILE).is_file() else []
    epoch = int(json.loads((f / "manifest.json").read_text())["epoch"])
    return folder, [r for r in rows if r["epoch"] <= epoch], epoch


def _tune_checkpoint(train_ckpt: str, rows: list[dict[str, Any]]):
    """A Tune checkpoint: the Train checkpoint's files plus ``schedule.json``."""
    from ray import tune

    tmp = Path(tempfile.mkdtemp(prefix="mixsize-pbt-"))
    shutil.copytree(train_ckpt, tmp, dirs_exist_ok=True)
    (tmp / SCHEDULE_FILE).write_text(json.dumps(rows, indent=1))
    return tune.Checkpoint.from_directory(str(tmp)), tmp


def run_pbt_trial(config: dict[str, Any], spec: SearchSpec, ctx: TrialContext) -> None:
    """Tune function trainable for ``search.scheduler: pbt`` (``tune.with_parameters(run_pbt_trial, ...)``)."""
    from ray import tune

    from mixsize_ray.config import config_from_dict
    from mixsize_ray.train.launch import failure_reason, launch
    from mixsize_ray.train.preflight import Start

    tctx = tune.get_context()
    base = tctx.get_trial_name()  # trial_<n>, fixed at creation (PBT copies the donor's config, number included)
    number = int(base.rsplit("_", 1)[-1])
    member = {**config, "trial_number": number}
    plan = build_trial(spec, ctx, member_params(spec, member), number)
    if plan.reason is not None:
        tune.report(worst_report(spec, number, final=1, infeasible=1, infeasible_reason=plan.reason, **{CLOCK: 0}))
        return
    cfg, epochs, interval = plan.config, plan.config.train.epochs, spec.search.pbt.perturbation_interval
    trial_file = Path(tctx.get_trial_dir()) / TRIAL_FILE
    mlflow_id = json.loads(trial_file.read_text()).get("mlflow_run_id") if trial_file.is_file() else None
    start_ckpt, rows, next_epoch = None, [], 0
    handed = tune.get_checkpoint()
    if handed is not None:
        start_ckpt, rows, last = _read_start(handed)
        next_epoch = last + 1
        raw = cfg.to_dict()
        raw["train"]["name"] = run_name_for(cfg, base, next_epoch)
        cfg = config_from_dict(raw)
    probs = dict(zip(plan.sizes, plan.probs, strict=True))
    while next_epoch < epochs:
        stop = segment_end(next_epoch, interval, epochs)
        start = Start(checkpoint=start_ckpt, stop_after_epoch=stop, mlflow_run_id=mlflow_id, may_change=MAY_CHANGE)
        try:
            result = launch(cfg, start=start)
        except Exception as e:  # noqa: BLE001 - a failed trial ends, the search goes on
            reason = e.reason if isinstance(e, RunFailed) else failure_reason(e)
            tune.report(worst_report(spec, number, fail_reason=reason, **{CLOCK: next_epoch}))
            raise TrialFailed(reason) from None
        if mlflow_id is None and result.mlflow_run_id:
            mlflow_id = result.mlflow_run_id
            trial_file.write_text(json.dumps({"mlflow_run_id": mlflow_id}))
        m = result.metrics
        done = int(m.get("epoch", stop))
        steps_per_epoch = int(m.get("steps", 0))
        for e in range(next_epoch, done + 1):
            gs = int(m.get("step", 0)) - (done - e) * steps_per_epoch
            rows.append(row(e, base, cfg.train.name, probs, member, gs))
        report = {**m, "trial_number": number, CLOCK: done + 1, "pbt_run": cfg.train.name}
        report = final_report(report, spec.objectives) if done == epochs - 1 else interim_report(report, spec.objectives)
        if ctx.tracking_uri and mlflow_id:
            log_schedule(ctx.tracking_uri, mlflow_id, rows)
        ckpt, tmp = _tune_checkpoint(result.checkpoint, rows)
        try:
            tune.report({k: v for k, v in report.items() if isinstance(v, int | float | str)}, checkpoint=ckpt)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        next_epoch = done + 1
