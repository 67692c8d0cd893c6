"""The define-by-run space against real in-memory Optuna studies: simplex, floor, budgets, constraints."""

from __future__ import annotations

import math
import pickle
import random

import optuna
import pytest

from mixsize_ray.core.sweep_metrics import sweep_metric
from mixsize_ray.tune.objective import Objective
from mixsize_ray.tune.simplex import probs_to_u, simplex_probs
from mixsize_ray.tune.space import RegimeSpace, TrialContext, build_trial, size_shares
from mixsize_ray.tune.spec import enqueue_params, parse_space

optuna.logging.set_verbosity(optuna.logging.WARNING)
CTX = TrialContext("exp", "/tmp/exp/trials", "sqlite:////tmp/m.db", "0" * 32)


@pytest.mark.parametrize("floor", [0.01, 0.05, 0.2])
def test_simplex_sums_to_one_and_respects_the_floor(floor):
    rng = random.Random(0)
    for _ in range(500):
        u = [rng.uniform(1e-12, 1.0) for _ in range(4)]
        sizes, p = simplex_probs([16, 24, 32, 40], u, floor, allow_drop=False)
        assert sizes == [16, 24, 32, 40] and abs(sum(p) - 1) < 1e-12 and min(p) >= floor - 1e-12


def test_simplex_drops_small_sizes_only_when_allowed():
    sizes, p = simplex_probs([16, 24, 32], [0.999, 0.1, 0.2], 0.05, allow_drop=True)
    assert sizes == [24, 32] and abs(sum(p) - 1) < 1e-12 and min(p) > 0
    sizes, p = simplex_probs([16, 24, 32], [0.999, 0.1, 0.2], 0.05, allow_drop=False)
    assert len(sizes) == 3 and min(p) >= 0.05


@pytest.mark.parametrize("allow_drop, probs", [(False, [0.2, 0.3, 0.3, 0.2]), (True, [0.0, 0.5, 0.25, 0.25])])
def test_probs_to_u_round_trip(allow_drop, probs):
    sizes = (16, 24, 32, 40)
    u = probs_to_u(sizes, probs, 0.05, allow_drop)
    kept, p = simplex_probs(sizes, [u[f"u_{s}"] for s in sizes], 0.05, allow_drop)
    assert dict(zip(kept, p, strict=True)) == pytest.approx({s: q for s, q in zip(sizes, probs, strict=True) if q})


def _ask(study, space, n):
    out = []
    for _ in range(n):
        t = study.ask()
        ret = space(t)
        assert ret == {"trial_number": t.number}
        out.append(study.get_trials(deepcopy=False)[t.number])
    return out


def test_define_by_run_draws_valid_budgeted_regimes(raw_space):
    raw_space["space"]["mode"] = ["B+", "D+", "fixed"]
    spec = parse_space(raw_space)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    trials = _ask(study, RegimeSpace(spec, CTX), 60)
    modes = {t.params["regime.mode"] for t in trials}
    assert modes == {"B+", "D+", "fixed"}
    for t in trials:
        ua = t.user_attrs
        assert abs(sum(ua["probs"]) - 1) < 1e-9
        assert all(abs(r - 1) <= 0.15 for r in ua["budget_ratios"])  # the space's tolerance
        cfg = ua["config"]
        assert cfg["train"]["name"] == f"trial_{t.number:04d}" and cfg["train"]["output_dir"] == CTX.trials_dir
        assert cfg["tracking"]["parent_run_id"] == CTX.parent_run_id and cfg["tracking"]["uri"] == CTX.tracking_uri
        if t.params["regime.mode"] == "fixed":  # control arm: S0 alone, no simplex parameters
            assert ua["sizes"] == [32] and ua["probs"] == [1.0]
            assert not any(k.startswith("u_") for k in t.params)
        else:
            assert ua["sizes"] == [16, 24, 32, 40] and min(ua["probs"]) >= 0.05 - 1e-12
            for s, b, d in zip(ua["sizes"], ua["batches"], ua["duplicates"], strict=True):
                assert abs(s * s * b * d / (32 * 32 * 32) - 1) <= 0.15
        assert set(t.constraints) == {"mean_size>=20", "mean_size<=36"}
        feasible = all(v <= 0 for v in t.constraints.values())
        assert feasible == (ua["infeasible_reason"] is None)
        assert 20 <= ua["facts"]["mean_size"] <= 36 or not feasible


def test_constraints_mark_infeasible_trials_with_a_reason(raw_space):
    raw_space["constraints"] = {"mean_size": {"low": 30}, "compute_ratio": {"max": 0.5}}
    spec = parse_space(raw_space)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    trials = _ask(study, RegimeSpace(spec, CTX), 20)
    infeasible = [t for t in trials if t.user_attrs["infeasible_reason"]]
    assert infeasible, "mean size >= 30 over 16..40 with a floor is rarely met, compute <= 0.5 never"
    for t in infeasible:
        assert "compute_ratio" in t.user_attrs["infeasible_reason"]
        assert any(v > 0 for v in t.constraints.values())


def test_enqueued_regime_is_reproduced(raw_space):
    raw_space["search"]["enqueue"] = [{"mode": "D+", "probs": [0.2, 0.3, 0.3, 0.2], "lr": 0.1,
                                       "smoothing_alpha": 0.9}]
    spec = parse_space(raw_space)
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(enqueue_params(spec, spec.search.enqueue[0]))
    (t,) = _ask(study, RegimeSpace(spec, CTX), 1)
    assert t.user_attrs["probs"] == pytest.approx([0.2, 0.3, 0.3, 0.2])
    assert t.params["regime.mode"] == "D+" and t.params["optim.lr"] == pytest.approx(0.1)


@pytest.mark.timeout(60)  # a hang guard; the space does arithmetic only (Tune warns above 1 s per call)
def test_space_is_picklable(raw_space):
    space = pickle.loads(pickle.dumps(RegimeSpace(parse_space(raw_space), CTX)))
    study = optuna.create_study(direction="maximize")
    assert len(_ask(study, space, 10)) == 10


def test_build_trial_per_trial_seed(raw_space):
    raw_space["search"]["trial_seed"] = "per-trial"
    raw_space["fixed"]["train"]["seed"] = 10
    spec = parse_space(raw_space)
    params = {"regime.mode": "B+", "optim.lr": 0.1, "optim.smoothing_alpha": 0.9,
              **{f"u_{s}": math.exp(-1) for s in (16, 24, 32, 40)}}
    plan = build_trial(spec, CTX, params, 3)
    assert plan.config.train.seed == 13 and plan.reason is None and plan.table.mode == "B+"
    assert size_shares(plan.user_attrs()) == pytest.approx({16: 0.25, 24: 0.25, 32: 0.25, 40: 0.25})
    # the context decides where the trial writes; the typed fixed part is carried over
    assert plan.config.train.name == "trial_0003" and plan.config.train.output_dir == CTX.trials_dir
    assert plan.config.tracking.run_name == "exp/trial_0003" and plan.config.regime.tolerance == 0.15


def test_objective_values():
    band = Objective("band", (16, 24), True, 16, 24)
    m = {sweep_metric(16, calibrated=True): 0.5, sweep_metric(24, calibrated=True): 0.7,
         sweep_metric(16, calibrated=False): 0.1, "step": 40}
    assert band.metric_keys() == [sweep_metric(16, True), sweep_metric(24, True)]
    assert band.value(m) == pytest.approx(0.6) and band.key == "obj_top1_cal_band_16_24"
    assert Objective("size", (16,), False).value(m) == 0.1
    assert Objective("steps").value(m) == 40 and Objective("steps").mode == "min"
    assert Objective("steps").worst == math.inf and Objective("target", (32,)).worst == 0.0
    assert Objective("target", (32,)).value(m) is None
