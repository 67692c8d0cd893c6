"""Optuna on Ray Tune: the sampler, the RDB storage, and :class:`RegimeSearch` (Tune's ``OptunaSearch`` plus
the bookkeeping this project needs).

``RegimeSearch`` keeps Optuna the single record of a search: each trial's Tune id, the reason it failed
(divergence), its final metrics (the accuracy-vs-size curve), and whether an early stop (ASHA) pruned it.
Only the Tune driver touches the storage, so a sqlite file is safe.

Resume: Tune restores the searcher from its last experiment checkpoint. A trial Optuna handed out after
that checkpoint (the driver died in between) is still RUNNING in the storage but unknown to Tune;
:func:`requeue_orphans` puts it back to WAITING, so the next suggestion re-uses it (same number, same
parameters) and the study ends with exactly ``num_samples`` trials.
"""

from __future__ import annotations

import logging
from typing import Any

from ray.air.constants import TRAINING_ITERATION
from ray.tune.search.optuna import OptunaSearch

from mixsize_ray.errors import ConfigError
from mixsize_ray.tune.spec import SearchSpec

log = logging.getLogger(__name__)

FINAL_KEYS_PREFIX = ("sweep_top1_", "obj_")
FINAL_KEYS = ("val_top1", "realised_budget", "step", "loss", "train_top1", "images_per_s", "epoch")


def make_sampler(spec: SearchSpec):
    """The Optuna sampler named by ``search.sampler``, seeded by ``search.seed``."""
    import optuna

    s = spec.search
    startup = max(2, min(10, s.num_samples // 2))
    if s.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=startup, multivariate=True,
                                          constant_liar=True)
    if s.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=s.seed, population_size=max(2, min(50, s.num_samples // 2)))
    if s.sampler == "gp":
        return optuna.samplers.GPSampler(seed=s.seed, n_startup_trials=startup)
    return optuna.samplers.RandomSampler(seed=s.seed)


def open_storage(url: str):
    """An Optuna RDB storage for ``url``; a URL that cannot be opened is a one-line ConfigError."""
    import optuna

    try:
        return optuna.storages.RDBStorage(url)
    except Exception as e:  # noqa: BLE001 - any driver/connection error means "cannot open"
        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ConfigError("search.storage", "a database URL Optuna can open", url, hint=msg) from None


def requeue_orphans(study: Any, known_numbers: set[int]) -> list[int]:
    """Trials RUNNING in the storage but unknown to Tune go back to WAITING; returns their numbers."""
    from optuna.trial import TrialState

    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.number not in known_numbers:
            study._storage.set_trial_state_values(t._trial_id, TrialState.WAITING)
            out.append(t.number)
    return out


def final_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The numbers of a final Tune result worth keeping on the Optuna trial (curve, objectives, budget)."""
    out = {}
    for k, v in result.items():
        if (k in FINAL_KEYS or k.startswith(FINAL_KEYS_PREFIX)) and isinstance(v, int | float):
            out[k] = float(v)
    return out


class RegimeSearch(OptunaSearch):
    """``OptunaSearch`` with a define-by-run space that records reasons and final metrics on the trials.

    Single objective: every report's objective key is recorded as an intermediate value (provisional
    before the last epoch). Only a final report (``final=1``) is told as the trial's value; a trial that
    ends without one (an ASHA stop) is told PRUNED, one that raised is told FAIL with ``fail_reason``.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._fail_reasons: dict[str, str] = {}

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        if config is not None:
            self._ot_trials[trial_id].set_user_attr("tune_trial_id", trial_id)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if "fail_reason" in result:
            self._fail_reasons[trial_id] = str(result["fail_reason"])
            return
        if trial_id in self._ot_trials and trial_id not in self._completed_trials:
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials:  # re-run after a restore, already told: nothing to add
            return
        ot_trial = self._ot_trials.get(trial_id)
        final = bool(result and result.get("final"))
        if ot_trial is not None:
            try:
                if error:
                    ot_trial.set_user_attr("fail_reason", self._fail_reasons.get(
                        trial_id, "the trial raised (see the Tune trial's error.txt)"))
                elif final:
                    ot_trial.set_user_attr("final_metrics", final_metrics(result))
                else:
                    it = (result or {}).get(TRAINING_ITERATION)
                    ot_trial.set_user_attr("stopped_early", f"stopped by the scheduler after {it} epoch(s)")
            except Exception as e:  # noqa: BLE001 - e.g. a trial already finished before a restore
                log.warning("could not annotate trial %s: %s", trial_id, e)
        super().on_trial_complete(trial_id, result=result if final else None, error=error)

    def restore(self, checkpoint_path: str) -> None:
        """Restore Tune's saved state; trials told since are done, trials handed out since are requeued."""
        from optuna.trial import TrialState

        super().restore(checkpoint_path)
        # told after that state was saved (Tune re-runs the trial; its finished Train run reports at once)
        finished = {t.number for t in self._ot_study.get_trials(deepcopy=False) if t.state != TrialState.RUNNING
                    and t.state != TrialState.WAITING}
        self._completed_trials.update(tid for tid, t in self._ot_trials.items() if t.number in finished)
        known = {t.number for t in self._ot_trials.values()}
        requeued = requeue_orphans(self._ot_study, known)
        if requeued:
            log.warning("re-queued Optuna trials %s handed out after Tune's last checkpoint", requeued)
