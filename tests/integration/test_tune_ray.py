"""Real regime searches on a real local Ray cluster (Ray Tune + Optuna sqlite + MLflow sqlite): a 4-trial
smoke search with 2 trials at a time, infeasible and diverging trials, a killed search resumed to exactly
num_samples trials, and the best config trained."""

from __future__ import annotations

import inspect
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow import MlflowClient
from optuna.trial import TrialState

import mixsize_ray.train.launch
import mixsize_ray.train.worker
from mixsize_ray.cli import main
from mixsize_ray.config import load_config
from mixsize_ray.tune.search import load_search_space, run_search

pytestmark = pytest.mark.integration
optuna.logging.set_verbosity(optuna.logging.WARNING)
ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 0.15
# the training side logs nested child runs once MLflow tracking is wired into the worker / launcher
TRACKING_WIRED = any("mixsize_ray.tracking" in inspect.getsource(m)
                     for m in (mixsize_ray.train.worker, mixsize_ray.train.launch))


def write_space(tmp: Path, name: str, mlflow_db: Path, **changes) -> Path:
    raw = {
        "name": name,
        "fixed": {
            "data": {"name": "shapes"}, "model": {"name": "resnet20"}, "regime": {"tolerance": TOLERANCE},
            "train": {"sweep_sizes": [16, 24, 32, 40]},
            "tracking": {"uri": f"sqlite:///{mlflow_db}", "experiment": "tune-tests"},
        },
        "space": {"sizes": [16, 24, 32, 40], "simplex": {"floor": 0.05},
                  "base": {"size": 32, "batch": 32, "duplicates": 1}, "mode": ["B+", "D+"],
                  "smoothing_alpha": {"low": 0.5, "high": 0.95}, "lr": {"low": 0.05, "high": 0.4, "log": True}},
        "objectives": [{"kind": "target", "size": 32}],
        "constraints": {"mean_size": {"low": 20, "high": 36}},
        "search": {"seed": 0},
    }
    for path, value in changes.items():
        node = raw
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    p = tmp / f"{name}.yaml"
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p


def study_of(exp: Path):
    meta = json.loads((exp / "search.json").read_text())
    return optuna.load_study(study_name=meta["study_name"], storage=meta["storage_url"]), meta


def children(db: Path, parent_id: str):
    c = MlflowClient(f"sqlite:///{db}")
    exp = c.get_experiment_by_name("tune-tests")
    return c.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")


@pytest.fixture(scope="module")
def smoke_search(ray_local, shapes_cache, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tune")
    db = tmp / "mlflow.db"
    spec = load_search_space(write_space(tmp, "smoke4", db), smoke=True, output_dir=str(tmp / "out"))
    assert spec.search.num_samples == 4 and spec.search.max_concurrent == 2
    t0 = time.perf_counter()
    summary = run_search(spec)
    return summary, db, time.perf_counter() - t0


@pytest.mark.slow  # four trials of a real search (its fixture)
def test_smoke_search_of_four_trials(smoke_search):
    summary, _db, seconds = smoke_search
    assert summary.num_trials == 4
    study, meta = study_of(summary.experiment_dir)
    assert meta["study_name"] == summary.experiment_dir.name
    trials = study.get_trials()
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    for t in trials:
        ua = t.user_attrs
        assert abs(sum(ua["probs"]) - 1) < 1e-9 and min(ua["probs"]) >= 0.05 - 1e-12
        assert abs(ua["final_metrics"]["realised_budget"] - 1) <= TOLERANCE  # measured in the run
        assert all(abs(r - 1) <= TOLERANCE for r in ua["budget_ratios"])  # solved per size
        assert 0 <= t.value <= 1 and t.value == ua["final_metrics"]["obj_top1_cal_32"]
        assert (summary.experiment_dir / "trials" / f"trial_{t.number:04d}").is_dir()
    rows = (summary.experiment_dir / "trials.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("trial,status,mode")
    for f in ("best.yaml", "curves.png", "importances.json", "space.yaml"):
        assert (summary.experiment_dir / f).stat().st_size > 0
    print(f"smoke search of 4 trials: {seconds:.0f} s")


@pytest.mark.slow  # (the smoke search)
def test_mlflow_parent_with_its_trials(smoke_search):
    summary, db, _ = smoke_search
    c = MlflowClient(f"sqlite:///{db}")
    parent = c.get_run(summary.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.info.run_name == summary.experiment_dir.name
    assert parent.data.params["search.num_samples"] == "4" and "best/top1_cal_32" in parent.data.metrics
    arts = {a.path for a in c.list_artifacts(summary.parent_run_id)}
    assert {"space.yaml", "best.yaml", "trials.csv", "curves.png", "importances.json", "search.json",
            "report.html"} <= arts
    page = (summary.experiment_dir / "report.html").read_text()
    assert page.count("Plotly.newPlot") >= 5 and '<section id="trials">' in page and "<script src=" not in page
    kids = children(db, summary.parent_run_id)
    if TRACKING_WIRED:
        assert sorted(r.data.tags["train.name"] for r in kids) == [f"trial_{i:04d}" for i in range(4)]


@pytest.mark.slow  # (the smoke search)
def test_best_yaml_trains(smoke_search, tmp_path):
    summary, _db, _ = smoke_search
    best = summary.experiment_dir / "best.yaml"
    cfg = load_config(best)
    study, _ = study_of(summary.experiment_dir)
    assert cfg.regime.probs == pytest.approx(study.best_trial.user_attrs["probs"])
    rc = main(["train", str(best), "--smoke", "--set", f"train.output_dir={tmp_path}", "--set", "train.epochs=1",
               "--set", "train.max_steps_per_epoch=4", "--set", "tracking.enabled=false"])
    assert rc == 0 and list((tmp_path / cfg.train.name).glob("checkpoint_*/state.pt"))


@pytest.mark.slow  # a search whose one trial must diverge
def test_infeasible_trials_do_not_train_and_divergence_fails_alone(ray_local, shapes_cache, tmp_path):
    db = tmp_path / "mlflow.db"
    space = write_space(tmp_path, "edge", db, space__lr={"low": 0.05, "high": 1.0e30, "log": True},
                        space__smoothing_alpha=None,
                        search__enqueue=[{"mode": "B+", "probs": [0.85, 0.05, 0.05, 0.05], "lr": 0.1},
                                         {"mode": "B+", "probs": [0.25, 0.25, 0.25, 0.25], "lr": 1.0e30}])
    spec = load_search_space(space, smoke=True, num_samples=2, output_dir=str(tmp_path / "out"))
    summary = run_search(spec)
    study, _ = study_of(summary.experiment_dir)
    infeasible, diverged = study.get_trials()
    assert infeasible.state == TrialState.COMPLETE and infeasible.value == 0.0
    assert "mean_size" in infeasible.user_attrs["infeasible_reason"]
    assert infeasible.constraints["mean_size>=20"] > 0
    assert "final_metrics" in infeasible.user_attrs and "step" not in infeasible.user_attrs["final_metrics"]
    assert not (summary.experiment_dir / "trials" / "trial_0000").exists()  # no Ray Train run at all
    assert diverged.state == TrialState.FAIL
    assert diverged.user_attrs["fail_reason"].startswith(("diverged: non-finite loss", "diverged: non-finite gradient norm"))
    statuses = [r["status"] for r in summary.report.rows]
    assert statuses == ["infeasible", "diverged"] and summary.report.best is None
    kids = children(db, summary.parent_run_id)
    assert any(r.data.tags.get("infeasible_reason") for r in kids)


@pytest.mark.slow  # a search killed mid-way, then resumed to its end
def test_killed_search_resumes_to_exactly_num_samples(ray_local, shapes_cache, tmp_path):
    db = tmp_path / "mlflow.db"
    space = write_space(tmp_path, "resume", db)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MIXSIZE_RAY_DATA_DIR": str(shapes_cache)}
    env.pop("RAY_ADDRESS", None)
    argv = [sys.executable, "-m", "mixsize_ray.cli", "tune", str(space), "--smoke", "--out", str(out)]
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    exp = None
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            time.sleep(2)
            found = list(out.glob("resume-smoke-*/search.json"))
            if not found:
                continue
            exp = found[0].parent
            try:
                study, _ = study_of(exp)
                done = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
            except Exception:  # noqa: BLE001 - the study may not exist yet
                continue
            if done:
                break
        assert proc.poll() is None, "the search ended before it could be interrupted"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        log.close()
    assert exp is not None
    console = (tmp_path / "first.log").read_text()
    # one readable line per trial (p shares, not Optuna's u draws), none of Ray's internal actor chatter
    assert re.search(r"^trial 0000 start  \S+ +p \d+:", console, re.M), console[-2000:]
    assert re.search(r"^trial 000\d done ", console, re.M), console[-2000:]
    assert "PlacementGroupCleaner" not in console and not re.search(r"\bu_\d+", console)
    study, meta = study_of(exp)
    before = len([t for t in study.get_trials() if t.state == TrialState.COMPLETE])
    assert 1 <= before < 4
    rc = main(["tune", str(space), "--smoke", "--out", str(out), "--resume"])
    assert rc == 0
    study, meta2 = study_of(exp)
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert meta2["parent_run_id"] == meta["parent_run_id"]
    assert len([d for d in exp.glob("trial_*") if d.is_dir()]) == 4  # Tune's trials
    c = MlflowClient(f"sqlite:///{db}")
    parents = c.search_runs([c.get_experiment_by_name("tune-tests").experiment_id],
                            f"tags.`mixsize.search` = '{exp.name}'")
    assert [r.info.run_id for r in parents] == [meta["parent_run_id"]]
    names = [r.data.tags.get("train.name") for r in children(db, meta["parent_run_id"])]
    assert len(names) == len(set(names))  # no duplicate child runs
    if TRACKING_WIRED:
        assert sorted(names) == [f"trial_{i:04d}" for i in range(4)]
