"""The MLflow run of a training run is decided once, by the driver: created, reattached to the checkpoint's
run, or nested (clearing an interrupted attempt's leftovers); the worker only logs to that run."""

from __future__ import annotations

import pytest

from mixsize_ray.config import load_config
from mixsize_ray.tracking.session import TrackingRun, finish_run, start_run, worker_tracker


@pytest.fixture
def store(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    return uri, MlflowClient(tracking_uri=uri)


def _cfg(uri, *sets):
    return load_config(None, ["tracking.enabled=true", f"tracking.uri={uri}", "tracking.experiment=sess",
                              "train.name=run-a", *sets])


def _runs(client):
    exp = client.get_experiment_by_name("sess")
    return client.search_runs([exp.experiment_id], run_view_type=3)  # active and deleted


def test_new_then_reattached_then_recreated_when_gone(store, tmp_path):
    uri, client = store
    logs = []
    first = start_run(_cfg(uri), storage=str(tmp_path), log=logs.append)
    assert first.created and client.get_run(first.run_id).data.params["regime.mode"]
    again = start_run(_cfg(uri, "train.epochs=7"), storage=str(tmp_path), resume_run_id=first.run_id,
                      log=logs.append)
    assert (again.run_id, again.created) == (first.run_id, False)
    assert client.get_run(first.run_id).data.tags["changed.train.epochs"].endswith("-> 7")
    client.delete_run(first.run_id)
    fresh = start_run(_cfg(uri), storage=str(tmp_path), resume_run_id=first.run_id, log=logs.append)
    assert fresh.created and fresh.run_id != first.run_id
    assert any("missing or deleted" in m for m in logs)


def test_a_fresh_start_continues_the_run_of_an_attempt_killed_before_its_first_checkpoint(store, tmp_path):
    uri, client = store
    killed = start_run(_cfg(uri), storage=str(tmp_path), log=lambda m: None)  # the driver died: no checkpoint
    logs: list[str] = []
    again = start_run(_cfg(uri), storage=str(tmp_path), log=logs.append)
    assert again.run_id == killed.run_id and not again.created
    assert any("continuing run" in m for m in logs)
    assert [r.info.run_id for r in _runs(client)] == [killed.run_id]  # one run for the folder, not two
    other_cfg = start_run(_cfg(uri, "optim.lr=0.2"), storage=str(tmp_path), log=lambda m: None)
    assert other_cfg.created and client.get_run(killed.run_id).info.status == "KILLED"  # not RUNNING forever
    finish_run(other_cfg, "FINISHED", log=lambda m: None)
    after_finish = start_run(_cfg(uri, "optim.lr=0.2"), storage=str(tmp_path), log=lambda m: None)
    assert after_finish.created  # a FINISHED run (checkpoints removed by hand) is never reopened


def test_a_nested_trial_continues_its_own_interrupted_attempt_only(store, tmp_path):
    uri, client = store
    parent = client.create_run(client.create_experiment("sess"), run_name="search").info.run_id
    cfg = _cfg(uri, f"tracking.parent_run_id={parent}")
    stale = start_run(cfg, storage=str(tmp_path), log=lambda m: None)
    other = start_run(_cfg(uri, f"tracking.parent_run_id={parent}", "train.name=run-b"), storage=str(tmp_path),
                      log=lambda m: None)
    new = start_run(cfg, storage=str(tmp_path), log=lambda m: None)
    assert new.run_id == stale.run_id and new.run_id != other.run_id
    assert client.get_run(other.run_id).info.lifecycle_stage == "active"  # another trial's run is kept
    assert client.get_run(new.run_id).data.tags["mlflow.parentRunId"] == parent


def test_the_worker_logs_to_the_drivers_run_and_creates_or_deletes_nothing(store, tmp_path):
    uri, client = store
    info = start_run(_cfg(uri), storage=str(tmp_path), log=lambda m: None)
    before = {(r.info.run_id, r.info.lifecycle_stage) for r in _runs(client)}
    tracker = worker_tracker(TrackingRun.from_dict(info.to_dict()).to_dict(), log=lambda m: None)
    tracker.log_epoch({"epoch": 0, "loss": 1.5})
    assert tracker.close() == 0 and tracker.run_id == info.run_id
    assert {(r.info.run_id, r.info.lifecycle_stage) for r in _runs(client)} == before
    assert client.get_metric_history(info.run_id, "train/loss")[0].value == 1.5
    assert finish_run(info, "FINISHED", log=lambda m: None) == 0
    assert client.get_run(info.run_id).info.status == "FINISHED"


def test_a_run_whose_driver_died_is_marked_killed_by_the_next_start(store, tmp_path):
    import subprocess
    import sys

    from mixsize_ray.tracking.session import DRIVER_TAG, driver_id

    uri, client = store
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a driver that was SIGKILLed: its pid is gone
    host = driver_id().split(":")[0]
    orphan = start_run(_cfg(uri, "train.name=orphan"), storage=str(tmp_path), log=lambda m: None)
    client.set_tag(orphan.run_id, DRIVER_TAG, f"{host}:{dead.pid}")
    logs: list[str] = []
    alive = start_run(_cfg(uri, "train.name=alive"), storage=str(tmp_path), log=logs.append)
    assert client.get_run(orphan.run_id).info.status == "KILLED"
    assert any(f"run {orphan.run_id} had lost its driver" in m for m in logs)
    assert client.get_run(alive.run_id).data.tags[DRIVER_TAG] == driver_id()
    start_run(_cfg(uri, "train.name=next"), storage=str(tmp_path), log=logs.append)
    assert client.get_run(alive.run_id).info.status == "RUNNING"  # this process is alive: left alone
