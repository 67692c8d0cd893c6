"""Parameter importances from real in-memory Optuna studies: one computation per objective, the size shares
(not Optuna's u draws) as variables, and a reason next to every zero."""

from __future__ import annotations

import math

import optuna
import pytest

from mixsize_ray.tune.importance import MIN_TRIALS, importances
from mixsize_ray.tune.report import feasible_complete
from mixsize_ray.tune.space import RegimeSpace, TrialContext, size_shares
from mixsize_ray.tune.spec import parse_space

optuna.logging.set_verbosity(optuna.logging.WARNING)
CTX = TrialContext("exp", "/tmp/exp/trials")


def _study(spec, n, values, enqueue=None):
    """``n`` trials of the define-by-run space, told ``values(trial)`` (one value per objective)."""
    directions = ["maximize" if o.mode == "max" else "minimize" for o in spec.objectives]
    study = optuna.create_study(directions=directions, sampler=optuna.samplers.RandomSampler(seed=0))
    space = RegimeSpace(spec, CTX)
    for _ in range(n):
        if enqueue:
            study.enqueue_trial(enqueue)
        t = study.ask()
        space(t)
        frozen = study.get_trials(deepcopy=False)[t.number]
        study.tell(t, values(frozen))
    return study


def _lr_and_p16(t):
    """Objective 0 moves with the LR only, objective 1 with the share of 16 px steps only."""
    return [0.5 + math.log(t.params["optim.lr"]), 100.0 * size_shares(t.user_attrs)[16]]


@pytest.fixture
def two_objective_spec(raw_space):
    raw_space["objectives"] = [{"kind": "target"}, {"kind": "steps"}]
    raw_space["constraints"] = {}  # every trial feasible
    return parse_space(raw_space)


def _top(imp):
    return next(iter(imp["importances"]))


def test_each_objective_names_its_own_parameter(two_objective_spec):
    spec = two_objective_spec
    study = _study(spec, 30, _lr_and_p16)
    out = importances(spec, feasible_complete(study))
    acc, steps = out["top1_cal_32"], out["steps"]
    assert acc["trials"] == steps["trials"] == 30
    assert _top(acc) == "optim.lr" and acc["importances"]["optim.lr"]["importance"] > 0.5
    assert _top(steps) == "p_16" and steps["importances"]["p_16"]["importance"] > 0.5
    assert acc["importances"] != steps["importances"]
    # the variables are the trials table's shares, not Optuna's u draws
    names = set(acc["importances"])
    assert {"p_16", "p_24", "p_32", "p_40", "optim.lr", "optim.smoothing_alpha", "regime.mode"} == names
    for imp in (acc, steps):
        values = [v["importance"] for v in imp["importances"].values()]
        assert sum(values) == pytest.approx(1.0) and values == sorted(values, reverse=True)
        for v in imp["importances"].values():  # a reason exactly where the number is 0 or missing
            assert ("reason" in v) == (not v["importance"])


def test_a_constant_parameter_is_zero_with_its_reason(two_objective_spec):
    spec = two_objective_spec
    study = _study(spec, 12, _lr_and_p16, enqueue={"optim.smoothing_alpha": 0.7})
    imp = importances(spec, feasible_complete(study))["top1_cal_32"]["importances"]
    assert imp["optim.smoothing_alpha"] == {"importance": 0.0, "reason": "constant across the 12 trials (0.7)"}
    assert imp["optim.lr"]["importance"] > 0.5


def test_too_few_trials_and_a_flat_objective_are_explained(two_objective_spec):
    spec = two_objective_spec
    few = importances(spec, feasible_complete(_study(spec, MIN_TRIALS - 1, _lr_and_p16)))
    for name in ("top1_cal_32", "steps"):
        assert few[name]["trials"] == MIN_TRIALS - 1
        for v in few[name]["importances"].values():
            assert v["importance"] is None and v["reason"].startswith("too few feasible finished trials")
    flat = importances(spec, feasible_complete(_study(spec, 6, lambda t: [0.5, 40.0])))
    for v in flat["steps"]["importances"].values():
        assert v == {"importance": 0.0, "reason": "the objective is 40 in all 6 trials: nothing to explain"}


def test_the_control_arm_counts_with_its_shares(raw_space):
    """Control-arm trials have no u draws; as shares they train at 32 px alone (p_32 = 1, the rest 0)."""
    raw_space["space"]["mode"] = ["B+", "fixed"]
    raw_space["constraints"] = {}
    spec = parse_space(raw_space)
    study = _study(spec, 24, lambda t: 0.9 if t.params["regime.mode"] == "fixed" else 0.5)
    trials = feasible_complete(study)
    assert {t.params["regime.mode"] for t in trials} == {"B+", "fixed"}
    imp = importances(spec, trials)["top1_cal_32"]["importances"]
    assert not any(k.startswith("u_") for k in imp)
    mode_and_shares = sum(imp[k]["importance"] for k in ("regime.mode", "p_16", "p_24", "p_32", "p_40"))
    assert mode_and_shares > 0.9  # the mode (equivalently its shares) explains the objective, lr and alpha do not
