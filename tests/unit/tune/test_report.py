"""End-of-search report from a real (in-memory) Optuna study: table, best.yaml, plots, Pareto front."""

from __future__ import annotations

import csv
import json

import optuna
import pytest

from mixsize_ray.config import load_config
from mixsize_ray.core.sweep_metrics import sweep_metric
from mixsize_ray.tune.report import best_config, build_report, format_table, trial_curve
from mixsize_ray.tune.space import RegimeSpace, TrialContext
from mixsize_ray.tune.spec import parse_space

optuna.logging.set_verbosity(optuna.logging.WARNING)
SIZES = (16, 24, 32, 40)


def _curve(acc32: float) -> dict[str, float]:
    out = {}
    for s in SIZES:
        out[sweep_metric(s, calibrated=True)] = acc32 - abs(s - 32) / 100
        out[sweep_metric(s, calibrated=False)] = acc32 - abs(s - 32) / 50
    return {**out, "realised_budget": 1.02, "step": 4.0}


def _study(spec, n=5):
    directions = ["maximize" if o.mode == "max" else "minimize" for o in spec.objectives]
    study = optuna.create_study(directions=directions, sampler=optuna.samplers.RandomSampler(seed=0))
    space = RegimeSpace(spec, TrialContext("exp", "/tmp/exp/trials"))
    for i in range(n):
        t = study.ask()
        space(t)
        if i == n - 1:
            t.set_user_attr("fail_reason", "diverged: non-finite loss nan")
            study.tell(t, state=optuna.trial.TrialState.FAIL)
            continue
        acc = 0.5 + i / 20
        metrics = _curve(acc)
        t.set_user_attr("final_metrics", metrics)
        values = [acc if o.kind == "target" else 100.0 - 10 * i for o in spec.objectives]
        study.tell(t, values if len(values) > 1 else values[0])
    return study


def test_single_objective_report(raw_space, tmp_path):
    spec = parse_space(raw_space)
    study = _study(spec)
    rep = build_report(spec, study, tmp_path, "exp")
    rows = list(csv.DictReader(open(rep.paths["trials_csv"])))
    assert len(rows) == 5 and rows[-1]["status"] == "diverged" and "non-finite" in rows[-1]["reason"]
    assert {f"p_{s}" for s in SIZES} <= set(rows[0])
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(abs(sum(float(r[f"p_{s}"]) for s in SIZES) - 1) < 1e-5 for r in ok)
    assert rep.best.number == 3  # highest accuracy
    cfg = load_config(rep.paths["best_yaml"])
    assert cfg.train.name == "exp-best" and cfg.tracking.parent_run_id is None
    assert cfg.regime.probs == pytest.approx(rep.best.user_attrs["probs"])
    assert rep.paths["curves_png"].stat().st_size > 5000 and "pareto_png" not in rep.paths
    imp = rep.importances["top1_cal_32"]
    assert imp["trials"] == 4 and set(imp["importances"]) == {f"p_{s}" for s in SIZES} | {
        "regime.mode", "optim.lr", "optim.smoothing_alpha"}
    assert json.loads((tmp_path / "importances.json").read_text()) == rep.importances
    text = format_table(spec, rep.rows)
    assert "diverged" in text and text.count("\n") == 5


def test_curves_are_read_back_through_sweep_metrics(raw_space):
    spec = parse_space(raw_space)
    study = _study(spec, n=2)
    t = study.trials[0]  # acc32 = 0.5
    assert trial_curve(t, calibrated=True) == ([16, 24, 32, 40], pytest.approx([0.34, 0.42, 0.5, 0.42]))
    assert trial_curve(t, calibrated=False) == ([16, 24, 32, 40], pytest.approx([0.18, 0.34, 0.5, 0.34]))


def test_best_config_stands_alone(raw_space):
    raw_space["fixed"]["tracking"] = {"uri": "sqlite:////tmp/elsewhere.db"}
    spec = parse_space(raw_space)
    study = _study(spec, n=2)
    cfg = best_config(spec, study.trials[0], "exp")
    assert cfg["tracking"]["uri"] == "sqlite:////tmp/elsewhere.db" and cfg["tracking"]["parent_run_id"] is None
    assert cfg["train"]["name"] == "exp-best" and cfg["train"]["output_dir"] == "runs"


def test_multi_objective_report_has_a_pareto_front(raw_space, tmp_path):
    raw_space["objectives"] = [{"kind": "target"}, {"kind": "steps"}]
    spec = parse_space(raw_space)
    study = _study(spec, n=5)
    rep = build_report(spec, study, tmp_path, "exp")
    # accuracy rises and steps fall with i: trial 3 dominates the others
    assert [t.number for t in rep.front] == [3] and rep.best.number == 3
    assert rep.paths["pareto_png"].stat().st_size > 5000


def test_infeasible_trials_never_win(raw_space, tmp_path):
    spec = parse_space(raw_space)
    study = _study(spec, n=3)
    t = study.ask()
    RegimeSpace(spec, TrialContext("exp", "/tmp"))(t)
    t.set_user_attr("infeasible_reason", "mean_size 17 violates mean_size>=20")
    study.tell(t, 0.99)  # even a high score does not make it best
    rep = build_report(spec, study, tmp_path, "exp")
    assert rep.best.number != t.number
    assert rep.rows[-1]["status"] == "infeasible" and not rep.rows[-1]["feasible"]
