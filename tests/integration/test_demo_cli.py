"""`mixsize-ray demo` end to end, shrunk (regime table, loader preview PNG, a 2-worker training on the local
cluster it starts itself, the curve), watched as a user would: every listening socket of every process of
the run (the driver, GCS, raylet, agents, dashboard head, Train controller, workers; psutil, twice a second)
is on loopback, and its console holds the project's progress lines and nothing of Ray's internal monitoring
that repeats (Ray Train's PlacementGroupCleaner printed "State API may be temporarily unavailable" every few
seconds before). One run serves the three tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
EPOCHS, STEPS = 2, 3
pytestmark = pytest.mark.integration


def listening(root: psutil.Process) -> set[tuple[str, str, int]]:
    """``(process name, address, port)`` of every listening inet socket of ``root`` and its descendants."""
    out = set()
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return out
    for p in procs:
        try:
            name = p.name()
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN:
                    out.add((name, c.laddr.ip, c.laddr.port))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def _plain(line: str) -> str:
    """A console line without colours and without Ray's ``(Actor pid=N)`` prefix."""
    return re.sub(r"^\(\S+ pid=\d+(, ip=[^)]*)?\)\s*", "", re.sub(r"\x1b\[[0-9;]*m", "", line)).strip()


@pytest.fixture(scope="module")
def run(tmp_path_factory, shapes_cache):
    """The demo's exit code, console, folder and every listening socket seen while it ran."""
    tmp = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MIXSIZE_RAY_DATA_DIR": str(shapes_cache)}
    env.pop("RAY_ADDRESS", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    shrink = [f"train.epochs={EPOCHS}", f"train.max_steps_per_epoch={STEPS}", "data.train_size=1024",
              "data.test_size=128", "train.calibrate_batches=1", "train.sweep_sizes=[16,32]"]
    argv = [sys.executable, "-m", "mixsize_ray.cli", "demo", "--out", str(tmp / "runs")]
    for s in shrink:
        argv += ["--set", s]
    console = tmp / "console.txt"
    with open(console, "w") as out:
        proc = subprocess.Popen(argv, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    driver, seen = psutil.Process(proc.pid), set()
    deadline = time.monotonic() + 600  # a hang guard only
    try:
        while proc.poll() is None:
            assert time.monotonic() < deadline, "the run did not end in 600 s"
            seen |= listening(driver)
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    return proc.returncode, console.read_text(), seen, tmp


def test_demo_smoke(run):
    rc, text, _, tmp = run
    assert rc == 0, text[-3000:]
    assert "mode=D+" in text and "top1_calibrated" in text
    assert (tmp / "runs" / "loader_preview.png").read_bytes()[:4] == b"\x89PNG"
    assert list((tmp / "runs" / "demo").glob("checkpoint_*/sweep.png"))
    assert (tmp / "mlflow.db").is_file()  # tracked in the default local store of the working dir


def test_every_process_of_a_local_run_listens_on_loopback_only(run):
    rc, text, seen, _ = run
    assert rc == 0, text[-3000:]
    names = {name for name, _, _ in seen}
    assert {"gcs_server", "raylet"} <= names, names  # the cluster's own processes were watched
    assert any("RayTrainWorker" in n or "TrainController" in n for n in names), names  # and its actors
    exposed = sorted(s for s in seen if s[1] not in LOOPBACK)
    assert exposed == [], f"listening beyond loopback: {exposed}"


def test_the_console_has_every_progress_line_and_no_repeating_ray_monitoring(run):
    rc, text, _, _ = run
    assert rc == 0, text[-3000:]
    lines = [_plain(line) for line in text.splitlines() if line.strip()]
    for epoch in range(EPOCHS):  # the project's progress, once per epoch and interval
        assert any(line.startswith(f"[mixsize-ray] epoch {epoch} step {STEPS}/{STEPS} ") for line in lines), epoch
        assert sum(line.startswith(f"[mixsize-ray] epoch {epoch} done: ") for line in lines) == 1, epoch
    assert any(line.startswith("[mixsize-ray] MLflow: run ") and " FINISHED: " in line for line in lines)
    assert any(line.split()[:4] == ["size", "top1", "top1_calibrated", "GFLOPs"] for line in lines)  # the sweep
    assert any(line.startswith("curve: ") for line in lines)
    assert not [line for line in lines if "State API may be temporarily unavailable" in line]
    ray_lines = [line for line in lines if "[mixsize-ray]" not in line]
    repeated = {line: n for line, n in Counter(ray_lines).items() if n > 1}
    assert repeated == {}, repeated
