"""A real `ray start --head` on loopback ports with its own temp dir and auth token, a real
`ray job submit` of a smoke training that must SUCCEED, then a stop of that cluster only."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.integration


@pytest.fixture
def ray_head(tmp_path, shapes_cache):
    temp_dir = Path("/tmp") / f"mxr-head-{secrets.token_hex(3)}"  # short: Ray's socket paths are length-capped
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN_PATH": str(token), "OMP_NUM_THREADS": "1",
           "MIXSIZE_RAY_DATA_DIR": str(shapes_cache)}
    env.pop("RAY_ADDRESS", None)
    gcs, dash, client, agent = (free_port() for _ in range(4))
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
         "--port", str(gcs), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
         "--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent),
         "--temp-dir", str(temp_dir), "--num-cpus", "3", "--include-dashboard", "true"],
        env=env, start_new_session=True, stdout=open(tmp_path / "head.log", "w"), stderr=subprocess.STDOUT,
    )
    address = f"http://127.0.0.1:{dash}"
    deadline = time.monotonic() + 120
    while True:
        probe = subprocess.run([str(BIN / "ray"), "job", "list", "--address", address], env=env,
                               capture_output=True, text=True)
        if probe.returncode == 0:
            break
        assert head.poll() is None, (tmp_path / "head.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "ray head did not come up in 120 s"
        time.sleep(2)
    yield address, env, temp_dir
    # stop THIS cluster only: SIGTERM the blocking `ray start` (it drains and stops its own processes)
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
    deadline = time.monotonic() + 30
    while _processes_using(temp_dir) and time.monotonic() < deadline:
        time.sleep(1)
    for pid in _processes_using(temp_dir):
        os.kill(pid, signal.SIGKILL)


def _processes_using(temp_dir: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", str(temp_dir)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out if int(p) != os.getpid()]


def test_ray_job_submit_smoke_train_succeeds(ray_head, tmp_path):
    address, env, temp_dir = ray_head
    out = tmp_path / "runs"
    proc = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", address, "--working-dir", str(ROOT), "--",
         "mixsize-ray", "train", "search_spaces/cifar_s28_dplus.yaml", "--smoke",
         "--set", "ray.num_workers=2", "--set", "tracking.enabled=false", "--set", f"train.output_dir={out}",
         "--set", "train.name=job"],
        env=env, capture_output=True, text=True, timeout=540,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "succeeded" in log
    listing = subprocess.run([str(BIN / "ray"), "job", "list", "--address", address], env=env,
                             capture_output=True, text=True).stdout
    assert "SUCCEEDED" in listing
    # the job ran on this cluster (its temp dir) and wrote the checkpoint + sweep
    ckpts = sorted((out / "job").glob("checkpoint_*/sweep.json"))
    assert ckpts, log[-3000:]
    assert any(temp_dir.glob("session_*/logs/job-driver-*.log"))
