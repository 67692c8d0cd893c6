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

from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration


def test_ui_serves_the_store_on_loopback(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("ui-test")
    run_id = client.create_run(exp, run_name="shown").info.run_id
    for s, v in ((16, 0.5), (32, 0.9)):
        client.log_metric(run_id, "top1_calibrated_vs_size", v, step=s)
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
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the command stops the server it started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # the port is free again: nothing left behind
