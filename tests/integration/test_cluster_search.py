"""A search as users run one on a cluster, on loopback: a Ray head plus a second node (`ray start --address`,
its own temp dir), `ray job submit -- mixsize-ray tune SPACE --smoke` with shared storage, and the second
node's raylet SIGKILLed mid-search as a preempted spot instance would be. Trials land on both nodes; the
lost node's trials are retried on the head; the search ends with exactly num_samples trials in Optuna and
in MLflow, none lost, none duplicated; the job's log names the retry.

The retries start only because the search frees the placement groups that the lost Train runs left
(:mod:`mixsize_ray.tune.orphan_groups`); before that, they waited for those CPUs until the 600 s limit."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.integration.ray_head import BIN, ray_head, ray_worker_node

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]  # two nodes, a search, a node lost mid-trial: minutes
SAMPLES = 4


def _raylet(temp_dir: Path) -> psutil.Process | None:
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if p.info["name"] == "raylet" and str(temp_dir) in cmd:
            return p
    return None


def _train_workers(raylet: psutil.Process) -> int:
    """Ray Train worker actors running under this node's raylet."""
    try:
        kids = raylet.children(recursive=True)
    except psutil.Error:
        return 0
    n = 0
    for k in kids:
        try:
            n += "TrainWorker" in " ".join(k.cmdline())
        except psutil.Error:
            continue
    return n


def _cluster_state(head) -> str:
    """`ray status` plus the live placement groups and actors: what holds the cluster's CPUs."""
    runs = [["status", "--address", head.gcs],
            ["list", "placement-groups", "--detail", "--address", head.address],
            ["list", "actors", "--filter", "state!=DEAD", "--address", head.address]]
    return "\n".join(subprocess.run([str(BIN / "ray"), *r], env=head.env, capture_output=True, text=True).stdout
                     for r in runs)


def test_a_search_survives_losing_a_node(tmp_path, shapes_cache):
    import optuna
    from mlflow import MlflowClient

    out, uri = tmp_path / "searches", f"sqlite:///{tmp_path}/mlflow.db"
    with ray_head(tmp_path, shapes_cache, num_cpus=2) as head, ray_worker_node(head, tmp_path, num_cpus=2) as node:
        log = tmp_path / "job.log"
        job = subprocess.Popen(
            [str(BIN / "ray"), "job", "submit", "--address", head.address, "--working-dir", str(ROOT), "--",
             "mixsize-ray", "tune", "search_spaces/quickstart.yaml", "--smoke", "--num-samples", str(SAMPLES),
             "--out", str(out), "--set", "train.epochs=2", "--set", "train.max_steps_per_epoch=30",
             "--set", f"tracking.uri={uri}", "--set", f"ray.storage_path={tmp_path / 'storage'}"],
            env=head.env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        head_raylet, node_raylet = _raylet(head.temp_dir), _raylet(node)
        assert head_raylet and node_raylet
        on_head = on_node = killed = False
        deadline = time.monotonic() + 600
        try:
            while job.poll() is None:
                if time.monotonic() > deadline:
                    pytest.fail(f"the search did not end in 600 s\n{_cluster_state(head)}\n{log.read_text()[-3000:]}")
                on_head |= _train_workers(head_raylet) > 0
                if not killed and _train_workers(node_raylet) > 0:
                    on_node = True
                    time.sleep(3)  # mid-trial
                    node_raylet.send_signal(signal.SIGKILL)  # the node is gone, as a preempted instance
                    killed = True
                time.sleep(0.5)
        finally:
            if job.poll() is None:
                os.killpg(job.pid, signal.SIGKILL)
                job.wait()
        text = log.read_text()
        assert job.returncode == 0, text[-4000:]
    assert killed and on_node and on_head, (killed, on_node, on_head)
    assert "retry" in text, text[-4000:]  # the job's log says a trial was retried
    (search,) = [d for d in out.iterdir() if (d / "search.json").is_file()]
    study = optuna.load_study(study_name=search.name, storage=f"sqlite:///{search / 'optuna.db'}")
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(SAMPLES))  # exactly num_samples, none duplicated
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    client = MlflowClient(tracking_uri=uri)
    exps = [e.experiment_id for e in client.search_experiments()]
    (parent,) = client.search_runs(exps, filter_string=f"tags.`mixsize.search` = '{search.name}'")
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(c.data.tags["train.name"] for c in children) == [f"trial_{i:04d}" for i in range(SAMPLES)]
    assert all(c.info.status == "FINISHED" for c in children)
