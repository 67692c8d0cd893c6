"""A `mixsize-ray train` driver killed with SIGKILL leaves its private Ray cluster behind (Ray's agents outlive
it, and its /tmp/mixsize-ray-* folder stays); the next command stops those processes, removes the folder,
says so in one line, and leaves no folder of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mixsize_ray.train.stale_clusters import OWNER_FILE, users_of

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]  # a driver killed with its cluster up, then a full re-run


def _owned_by(pid: int) -> list[Path]:
    out = []
    for folder in Path(tempfile.gettempdir()).glob("mixsize-ray-*"):
        try:
            if json.loads((folder / OWNER_FILE).read_text())["pid"] == pid:
                out.append(folder)
        except (OSError, ValueError, KeyError):
            continue
    return out


def test_the_next_command_stops_what_a_killed_driver_left(tmp_path, shapes_cache):
    argv = [sys.executable, "-m", "mixsize_ray.cli", "train", str(ROOT / "search_spaces/cifar_s28_dplus.yaml"),
            "--smoke", "--set", "tracking.enabled=false", "--set", f"train.output_dir={tmp_path}",
            "--set", "train.name=killed"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MIXSIZE_RAY_DATA_DIR": str(shapes_cache)}
    env.pop("RAY_ADDRESS", None)
    driver = subprocess.Popen(argv, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not ((owned := _owned_by(driver.pid)) and users_of(owned[0])):  # its cluster is up
            assert driver.poll() is None and time.monotonic() < deadline, "no local cluster within 180 s"
            time.sleep(0.5)
        time.sleep(3)
    finally:
        os.kill(driver.pid, signal.SIGKILL)  # the driver only, as `kill -9 PID` or an OOM kill would
        driver.wait()
    (folder,) = owned
    assert folder.is_dir()  # nobody removed it
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        out, err = proc.communicate(timeout=400)  # a hang guard only
    rerun = subprocess.CompletedProcess(argv, proc.returncode, out, err)
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]
    lines = [ln for ln in rerun.stdout.splitlines() if "left by a killed run" in ln]
    assert len(lines) == 1 and str(folder) in lines[0], rerun.stdout[-3000:]
    assert not folder.exists() and users_of(folder) == []
    assert _owned_by(proc.pid) == []  # the re-run left no folder of its own (other processes' folders aside)
