"""RegimeSearch (Tune's OptunaSearch + bookkeeping) without a cluster: outcomes recorded on the Optuna trials,
save/restore through a real sqlite study, orphaned trials re-used so a resumed study has no extra trials."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

import mixsize_ray.tune.searcher
from mixsize_ray.core.sweep_metrics import sweep_metric
from mixsize_ray.train.launch import failure_reason
from mixsize_ray.tune.searcher import RegimeSearch, final_metrics, open_storage, requeue_orphans
from mixsize_ray.tune.space import RegimeSpace, TrialContext
from mixsize_ray.tune.spec import parse_space

optuna.logging.set_verbosity(optuna.logging.WARNING)
CTX = TrialContext("exp", "/tmp/exp/trials")


def _searcher(spec, storage=None, study_name="s"):
    return RegimeSearch(RegimeSpace(spec, CTX), metric="obj_top1_cal_32", mode="max", storage=storage,
                        study_name=study_name, sampler=optuna.samplers.RandomSampler(seed=0))


def test_outcomes_are_recorded_on_the_study(raw_space):
    s = _searcher(parse_space(raw_space))
    for tid in ("a", "b", "c"):
        cfg = s.suggest(tid)
        assert "trial_number" in cfg and any(k.startswith("u_") for k in cfg)
    s.on_trial_result("a", {"val_top1": 0.3, "obj_top1_cal_32": 0.3, "final": 0, "training_iteration": 1})
    s.on_trial_result("a", {"obj_top1_cal_32": 0.5, "final": 1, sweep_metric(32, True): 0.5,
                            "training_iteration": 2})
    s.on_trial_complete("a", {"obj_top1_cal_32": 0.5, "final": 1, sweep_metric(32, True): 0.5,
                              sweep_metric(32, False): 0.4, "realised_budget": 1.01, "training_iteration": 2,
                              "lr": 0.1})
    s.on_trial_result("b", {"fail_reason": "diverged: non-finite loss nan", "training_iteration": 1})
    s.on_trial_complete("b", error=True)
    s.on_trial_complete("c", {"obj_top1_cal_32": 0.2, "final": 0, "training_iteration": 1})  # an ASHA stop
    trials = {t.user_attrs["tune_trial_id"]: t for t in s.study.trials}
    assert [trials[k].number for k in "abc"] == [0, 1, 2]
    assert trials["a"].state == TrialState.COMPLETE and trials["a"].value == 0.5
    assert trials["a"].intermediate_values == {1: 0.3, 2: 0.5}
    assert trials["a"].user_attrs["final_metrics"] == {
        "obj_top1_cal_32": 0.5, sweep_metric(32, True): 0.5, sweep_metric(32, False): 0.4, "realised_budget": 1.01}
    assert trials["b"].state == TrialState.FAIL and trials["b"].user_attrs["fail_reason"].startswith("diverged")
    assert trials["c"].state == TrialState.PRUNED and "stopped" in trials["c"].user_attrs["stopped_early"]


def test_restore_requeues_orphans_and_reuses_them(raw_space, tmp_path):
    spec = parse_space(raw_space)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    s = _searcher(spec, open_storage(url))
    first = s.suggest("a")
    s.suggest("z")
    s.save(str(tmp_path / "searcher.pkl"))  # Tune's checkpoint knows trials 0 and 1
    s.on_trial_complete("z", {"obj_top1_cal_32": 0.1, "final": 1})  # told after the checkpoint
    orphan = s.suggest("b")  # handed out after the checkpoint, then the driver dies
    s2 = _searcher(spec, open_storage(url))
    s2.restore(str(tmp_path / "searcher.pkl"))
    study = optuna.load_study(study_name="s", storage=url)
    assert [t.state for t in study.trials] == [TrialState.RUNNING, TrialState.COMPLETE, TrialState.WAITING]
    again = s2.suggest("b2")
    assert again == orphan and again != first
    # Tune re-runs "z" (it was RUNNING in Tune's state): its results must not touch the finished trial
    s2.on_trial_result("z", {"obj_top1_cal_32": 0.1, "final": 1, "training_iteration": 1})
    s2.on_trial_complete("z", {"obj_top1_cal_32": 0.1, "final": 1})
    s2.on_trial_complete("a", {"obj_top1_cal_32": 0.4, "final": 1})
    s2.on_trial_complete("b2", {"obj_top1_cal_32": 0.6, "final": 1})
    study = optuna.load_study(study_name="s", storage=url)
    assert len(study.trials) == 3 and all(t.state == TrialState.COMPLETE for t in study.trials)
    assert [t.value for t in study.trials] == [0.4, 0.1, 0.6]


def test_requeue_keeps_known_trials(raw_space):
    spec = parse_space(raw_space)
    s = _searcher(spec)
    s.suggest("a")
    s.suggest("b")
    assert requeue_orphans(s.storage, "s", {0, 1}) == []
    assert requeue_orphans(s.storage, "s", {0}) == [1]
    assert [t.state for t in s.study.trials] == [TrialState.RUNNING, TrialState.WAITING]


def test_final_metrics_keep_the_curve_and_objectives():
    r = {sweep_metric(16, True): 0.6, sweep_metric(16, False): 0.5, "obj_steps": 40, "step": 40, "epoch": 1,
         "lr": 0.1, "fail_reason": "x", "final": 1}
    assert final_metrics(r) == {sweep_metric(16, True): 0.6, sweep_metric(16, False): 0.5, "obj_steps": 40.0,
                                "step": 40.0, "epoch": 1.0}


def test_searcher_uses_no_private_optuna_or_tune_state():
    import inspect

    src = inspect.getsource(mixsize_ray.tune.searcher)
    for private in ("_ot_trials", "_ot_study", "._storage", "_completed_trials", "._trial_id"):
        assert private not in src, private


def test_bad_storage_url_is_one_line():
    from mixsize_ray.errors import ConfigError

    with pytest.raises(ConfigError, match="^search.storage: expected a database URL"):
        open_storage("sqlite:////nonexistent-dir/x/optuna.db")
    with pytest.raises(ConfigError, match="^search.storage"):
        open_storage("nosuchdb://host/db")


def test_failure_reason_names_divergence():
    err = RuntimeError("Training failed.\n  FloatingPointError: non-finite loss nan at epoch 0 step 2 (size 16)")
    assert failure_reason(err) == "diverged: non-finite loss nan at epoch 0 step 2 (size 16)"
    grad = RuntimeError("x\n FloatingPointError: non-finite gradient norm inf at epoch 1 step 7 (size 24), loss 2.3")
    assert failure_reason(grad) == "diverged: non-finite gradient norm inf at epoch 1 step 7 (size 24), loss 2.3"
    traceback = RuntimeError('Traceback:\n  File "loop.py", line 318\n    raise FloatingPointError(f"non-finite loss '
                             '{r.bad_loss} {at}")\nFloatingPointError: non-finite loss nan at epoch 0 step 4 (size 32)')
    assert failure_reason(traceback) == "diverged: non-finite loss nan at epoch 0 step 4 (size 32)"
    assert failure_reason(ValueError("boom")).startswith("failed: ValueError: boom")


def test_tuner_with_asha_and_multi_objective(raw_space, tmp_path):
    """The Tuner a search builds (no cluster needed to construct it): ASHA on the per-epoch val_top1,
    both objectives handed to Optuna, the token-CPU trainable."""
    from mixsize_ray.tune.search import _tuner

    raw_space["search"]["asha"] = {"grace_period": 1, "reduction_factor": 3}
    raw_space["objectives"] = [{"kind": "target"}, {"kind": "steps"}]
    spec = parse_space(raw_space)
    meta = {"study_name": "t", "num_samples": 4}
    tuner = _tuner(spec, tmp_path / "exp", meta, CTX, open_storage(f"sqlite:///{tmp_path / 'o.db'}"), False)
    tc = tuner._local_tuner._tune_config
    assert type(tc.scheduler).__name__ == "AsyncHyperBandScheduler" and tc.scheduler.metric == "val_top1"
    assert tc.search_alg.metric == ["obj_top1_cal_32", "obj_steps"] and tc.search_alg.mode == ["max", "min"]
    assert tc.num_samples == 4 and tc.max_concurrent_trials == 2
    assert optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 'o.db'}").directions == [
        optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]


@pytest.mark.parametrize("name, cls", [("tpe", "TPESampler"), ("nsga2", "NSGAIISampler"), ("gp", "GPSampler"),
                                       ("random", "RandomSampler")])
def test_samplers_draw_the_space(raw_space, name, cls):
    from mixsize_ray.tune.searcher import make_sampler

    raw_space["search"]["sampler"] = name
    spec = parse_space(raw_space)
    sampler = make_sampler(spec)
    assert type(sampler).__name__ == cls
    study = optuna.create_study(direction="maximize", sampler=sampler)
    space = RegimeSpace(spec, CTX)
    for i in range(4):  # past the startup trials of the model-based samplers
        t = study.ask()
        space(t)
        study.tell(t, 0.1 * i)
    assert len(study.trials) == 4 and all(abs(sum(t.user_attrs["probs"]) - 1) < 1e-9 for t in study.trials)
