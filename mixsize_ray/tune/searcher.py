"""Optuna on Ray Tune: the sampler, the RDB storage, and :class:`RegimeSearch` (Tune's ``OptunaSearch`` plus
the bookkeeping this project needs).

``RegimeSearch`` keeps Optuna the single record of a search: each trial's Tune id, the reason it failed
(divergence), its final metrics (the accuracy-vs-size curve), and whether an early stop (ASHA) pruned it.
Only the Tune driver touches the storage, so a sqlite file is safe.

It uses ``OptunaSearch`` through its public constructor and methods only, and reaches the study through
Optuna's public API on the storage it was given (``optuna.load_study``, ``Study.get_trials``, and the
storage's own methods for what a study offers no call for: a user attribute on a trial the driver did not
ask for itself, and a RUNNING trial put back to WAITING). Which Optuna trial a Tune trial holds comes from
the config the define-by-run space returns (``trial_number``).

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

from mixsize_ray.core.sweep_metrics import is_sweep_metric
from mixsize_ray.errors import ConfigError, one_line
from mixsize_ray.tune.objective import OBJECTIVE_PREFIX
from mixsize_ray.tune.spec import SearchSpec

log = logging.getLogger(__name__)

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
        msg = one_line(e)
        raise ConfigError("search.storage", "a database URL Optuna can open", url, hint=msg) from None


def storage_trial_id(storage: Any, study_name: str, number: int) -> int:
    """The storage's id of trial ``number`` of study ``study_name`` (what the storage's trial methods take)."""
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study_name), number)


def requeue_orphans(storage: Any, study_name: str, known_numbers: set[int]) -> list[int]:
    """Trials RUNNING in the storage but unknown to Tune go back to WAITING; returns their numbers.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> storage = optuna.storages.InMemoryStorage()
        >>> study = optuna.create_study(storage=storage, study_name="s")
        >>> _ = study.ask(), study.ask()
        >>> requeue_orphans(storage, "s", known_numbers={0})
        [1]
        >>> [t.state.name for t in study.get_trials()]
        ['RUNNING', 'WAITING']
    """
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name=study_name, storage=storage)
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.number not in known_numbers:
            storage.set_trial_state_values(storage_trial_id(storage, study_name, t.number), TrialState.WAITING)
            out.append(t.number)
    return out


def final_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The numbers of a final Tune result worth keeping on the Optuna trial (curve, objectives, budget).

    Example:
        >>> from mixsize_ray.core.sweep_metrics import sweep_metric
        >>> point = sweep_metric(32, calibrated=False)
        >>> final_metrics({point: 0.9, "obj_top1_cal_32": 0.8, "step": 40, "lr": 0.1, "note": "x"}) == {
        ...     point: 0.9, "obj_top1_cal_32": 0.8, "step": 40.0}
        True
    """
    out = {}
    for k, v in result.items():
        keep = k in FINAL_KEYS or k.startswith(OBJECTIVE_PREFIX) or is_sweep_metric(k)
        if keep and isinstance(v, int | float):
            out[k] = float(v)
    return out


class RegimeSearch(OptunaSearch):
    """``OptunaSearch`` with a define-by-run space that records reasons and final metrics on the trials.

    Single objective: every report's objective key is recorded as an intermediate value (provisional
    before the last epoch). Only a final report (``final=1``) is told as the trial's value; a trial that
    ends without one (an ASHA stop) is told PRUNED, one that raised is told FAIL with ``fail_reason``.

    ``space`` must return ``{"trial_number": n}`` (as :class:`~mixsize_ray.tune.space.RegimeSpace` does);
    ``storage`` None keeps the study in memory.
    """

    def __init__(self, space: Any, metric: str | list[str], mode: str | list[str], *,
                 points_to_evaluate: list[dict[str, Any]] | None = None, sampler: Any = None,
                 study_name: str = "optuna", storage: Any = None):
        import optuna

        self._search_storage = storage if storage is not None else optuna.storages.InMemoryStorage()
        self._search_study_name = study_name
        self._numbers: dict[str, int] = {}  # Tune trial id -> Optuna trial number
        self._told: set[str] = set()  # Tune trial ids whose Optuna trial is finished
        self._fail_reasons: dict[str, str] = {}
        super().__init__(space, metric=metric, mode=mode, points_to_evaluate=points_to_evaluate, sampler=sampler,
                         study_name=study_name, storage=self._search_storage)

    @property
    def storage(self) -> Any:
        """The Optuna storage holding the study."""
        return self._search_storage

    @property
    def study_name(self) -> str:
        return self._search_study_name

    @property
    def study(self) -> Any:
        """The study, loaded from the storage (Optuna's public ``load_study``)."""
        import optuna

        return optuna.load_study(study_name=self._search_study_name, storage=self._search_storage)

    def _set_user_attr(self, trial_id: str, key: str, value: Any) -> None:
        storage = self._search_storage
        storage.set_trial_user_attr(storage_trial_id(storage, self._search_study_name, self._numbers[trial_id]),
                                    key, value)

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        if config is not None:
            self._numbers[trial_id] = int(config["trial_number"])
            self._set_user_attr(trial_id, "tune_trial_id", trial_id)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if "fail_reason" in result:
            self._fail_reasons[trial_id] = str(result["fail_reason"])
            return
        if trial_id in self._numbers and trial_id not in self._told:
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._told:  # re-run after a restore, already told: nothing to add
            return
        final = bool(result and result.get("final"))
        if trial_id in self._numbers:
            try:
                if error:
                    self._set_user_attr(trial_id, "fail_reason", self._fail_reasons.get(
                        trial_id, "the trial raised (see the Tune trial's error.txt)"))
                elif final:
                    self._set_user_attr(trial_id, "final_metrics", final_metrics(result))
                else:
                    it = (result or {}).get(TRAINING_ITERATION)
                    self._set_user_attr(trial_id, "stopped_early", f"stopped by the scheduler after {it} epoch(s)")
            except Exception as e:  # noqa: BLE001 - e.g. a trial already finished before a restore
                log.warning("could not annotate trial %s: %s", trial_id, e)
        super().on_trial_complete(trial_id, result=result if final else None, error=error)
        self._told.add(trial_id)

    def restore(self, checkpoint_path: str) -> None:
        """Restore Tune's saved state; trials told since are done, trials handed out since are requeued."""
        super().restore(checkpoint_path)
        # told after that state was saved (Tune re-runs the trial; its finished Train run reports at once)
        finished = {t.number for t in self.study.get_trials(deepcopy=False) if t.state.is_finished()}
        self._told.update(tid for tid, n in self._numbers.items() if n in finished)
        requeued = requeue_orphans(self._search_storage, self._search_study_name, set(self._numbers.values()))
        if requeued:
            log.warning("re-queued Optuna trials %s handed out after Tune's last checkpoint", requeued)
