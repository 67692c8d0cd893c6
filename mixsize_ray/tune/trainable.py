"""One Tune trial = one MixSize training run on Ray Train (the Train V2 pattern).

:func:`run_trial` is a Tune function trainable (give it a token CPU with ``tune.with_resources`` so that
concurrent trials cannot starve each other of the CPUs their workers need). It rebuilds the trial's
config from the suggested parameters (:func:`mixsize_ray.tune.space.build_trial`) and then:

* infeasible (a constraint violated, or an invalid config): reports every objective's worst value, the
  reason and ``final=1`` at once, and trains nothing;
* otherwise runs it through :func:`~mixsize_ray.train.launch.launch`, the path every run takes (its
  MLflow child run is nested under the search's parent through ``tracking.parent_run_id``), with an
  :class:`ObjectiveReportCallback` (a ``TuneReportCallback`` that adds the objectives to the last
  epoch's report). A failed run
  (a non-finite loss raises ``FloatingPointError`` in the worker) reports ``fail_reason`` and raises
  :class:`TrialFailed`, so Tune marks the trial ERROR and the search goes on;
* a trial restarted by a resumed search continues its Train run from the last checkpoint (same run
  name); one whose run had already finished reports the stored final metrics without training.
"""

from __future__ import annotations

from typing import Any

from ray.tune.integration.ray_train import TuneReportCallback

from mixsize_ray.errors import RunFailed
from mixsize_ray.tune.objective import Objective
from mixsize_ray.tune.space import TrialContext, build_trial
from mixsize_ray.tune.spec import SearchSpec


class TrialFailed(RuntimeError):
    """A trial's training run failed; the message is the one-line reason (e.g. ``diverged: ...``)."""


def final_report(metrics: dict[str, Any], objectives: tuple[Objective, ...]) -> dict[str, Any]:
    """The last epoch's report plus ``obj_<name>`` for every objective and ``final=1`` (a missing key gives
    the objective's worst value and names it in ``objective_missing``)."""
    out = dict(metrics)
    missing = []
    for o in objectives:
        v = o.value(metrics)
        if v is None:
            missing.append(o.name)
        out[o.key] = o.worst if v is None else v
    if missing:
        out["objective_missing"] = ",".join(missing)
    out["final"] = 1
    return out


def interim_report(metrics: dict[str, Any], objectives: tuple[Objective, ...]) -> dict[str, Any]:
    """An epoch before the last: provisional ``obj_<name>`` values (see :meth:`Objective.provisional`)."""
    return {**metrics, **{o.key: o.provisional(metrics) for o in objectives}, "final": 0}


def worst_report(spec: SearchSpec, number: int, **extra: Any) -> dict[str, Any]:
    """A report for a trial that does not train to the end: every objective (and the ASHA metric) at its
    worst, so Tune's metric check passes."""
    out: dict[str, Any] = {o.key: o.worst for o in spec.objectives}
    if spec.search.asha:
        out[spec.search.asha["metric"]] = 0.0
    return {**out, "trial_number": number, **extra}


class ObjectiveReportCallback(TuneReportCallback):
    """Forward rank 0's per-epoch report to Tune: :func:`interim_report`, then :func:`final_report` at the
    last epoch."""

    def __init__(self, objectives: tuple[Objective, ...], last_epoch: int, trial_number: int):
        super().__init__()
        self.objectives, self.last_epoch, self.trial_number = objectives, last_epoch, trial_number

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        first = {**metrics[0], "trial_number": self.trial_number}
        last = first.get("epoch") == self.last_epoch and not first.get("mid_epoch")
        first = final_report(first, self.objectives) if last else interim_report(first, self.objectives)
        super().after_report(run_context, [first, *metrics[1:]], checkpoint)


def run_trial(config: dict[str, Any], spec: SearchSpec, ctx: TrialContext) -> None:
    """Tune function trainable (use with ``tune.with_parameters(run_trial, spec=..., ctx=...)``)."""
    from ray import tune

    from mixsize_ray.train.launch import failure_reason, launch

    number = int(config["trial_number"])
    params = {k: v for k, v in config.items() if k != "trial_number"}
    plan = build_trial(spec, ctx, params, number)
    if plan.reason is not None:
        tune.report(worst_report(spec, number, final=1, infeasible=1, infeasible_reason=plan.reason))
        return
    callback = ObjectiveReportCallback(spec.objectives, plan.config.train.epochs - 1, number)
    try:
        result = launch(plan.config, callbacks=[callback])
    except Exception as e:  # noqa: BLE001 - every training failure ends this trial, not the search
        reason = e.reason if isinstance(e, RunFailed) else failure_reason(e)
        tune.report(worst_report(spec, number, fail_reason=reason))
        raise TrialFailed(reason) from None
    if not result.trained:  # its Train run had finished before (the driver died before Tune got it)
        tune.report(final_report({**result.metrics, "trial_number": number}, spec.objectives))
