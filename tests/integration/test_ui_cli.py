"""`mixsize-ray ui` starts a real `mlflow server` on the run store, bound to loopback, prints its address,
serves the runs there, and stops (with its children) on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from mixsize_ray.tracking.server import descendants
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, only not yet reaped
    except OSError:
        return False


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ui_serves_the_store_on_loopback(tmp_path, stop):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("ui-test")
    run_id = client.create_run(exp, run_name="shown").info.run_id
    for s, v in ((16, 0.5), (32, 0.9)):
        client.log_metric(run_id, "accuracy_vs_size/top1_calibrated", v, step=s)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mixsize_ray.cli", "ui", "--port", str(port),
                             "--backend-store-uri", uri], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        line = ""
        while "MLflow UI:" not in line:
            assert time.monotonic() < deadline and proc.poll() is None, line
            line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line and uri in line
        body = json.dumps({"experiment_ids": [exp]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            runs = json.loads(r.read())["runs"]
        assert [r["info"]["run_id"] for r in runs] == [run_id]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
        started = descendants(proc.pid)  # mlflow server, uvicorn, huey workers
        assert started  # at least the mlflow server (and its uvicorn / huey workers)
    finally:
        os.kill(proc.pid, stop)  # Ctrl-C or a service manager's SIGTERM: the command stops what it started
        try:
            proc.wait(timeout=60)  # a hang guard, not a speed check
            exited = True
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            exited = False
    assert exited and proc.returncode in (0, 130)
    assert [p for p in started if _alive(p)] == []  # no server, uvicorn or huey process outlives it
    import socket

    with socket.socket() as s:  # the port is free again: nothing listens on it any more
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: the client's TIME_WAIT
        s.bind(("127.0.0.1", port))  # connections linger by TCP's design; a listener would still refuse
