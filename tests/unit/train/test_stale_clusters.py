"""Local clusters of killed drivers are stopped and removed by the next command; live ones are kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil
import pytest

from mixsize_ray.train.stale_clusters import ORPHAN_AGE_S, OWNER_FILE, claim, reap_stale


def _user_of(folder) -> subprocess.Popen:
    """A process whose command line names ``folder``, as Ray's raylet and agents do."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", f"--temp-dir={folder}/session_x"],
                            start_new_session=True)


def _dead_driver(folder) -> None:
    """The owner file of a driver that has exited (its pid and start time are real, the process is gone)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(p.pid).create_time()
    p.wait()
    folder.mkdir()
    (folder / OWNER_FILE).write_text(json.dumps({"pid": p.pid, "started": started}))


def test_a_killed_drivers_cluster_is_stopped_and_removed(tmp_path):
    folder = tmp_path / "mixsize-ray-dead"
    _dead_driver(folder)
    agent = _user_of(folder)
    try:
        (gone,) = reap_stale(root=tmp_path, grace_s=5)
        assert gone.folder == folder and gone.stopped == 1
        assert agent.wait(timeout=10) is not None  # stopped
        assert not folder.exists()
    finally:
        if agent.poll() is None:
            agent.kill()


def test_a_live_drivers_cluster_is_left_alone(tmp_path):
    folder = claim(tmp_path / "mixsize-tune-live")  # this test process is the driver
    agent = _user_of(folder)
    try:
        assert reap_stale(root=tmp_path) == []
        assert agent.poll() is None and (folder / OWNER_FILE).is_file()
    finally:
        agent.kill()
        agent.wait()


def test_a_reused_pid_is_not_taken_for_the_driver(tmp_path):
    folder = tmp_path / "mixsize-ray-reused"
    folder.mkdir()  # our own pid, but another start time: the recorded driver is gone
    (folder / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "started": time.time() - 10**6}))
    assert [r.folder for r in reap_stale(root=tmp_path)] == [folder]


@pytest.mark.parametrize("age_s, kept", [(60, True), (ORPHAN_AGE_S + 60, False)])
def test_a_folder_without_owner_goes_only_when_idle_and_old(tmp_path, age_s, kept):
    folder = tmp_path / "mixsize-ray-old"
    folder.mkdir()
    t = time.time() - age_s
    os.utime(folder, (t, t))
    reap_stale(root=tmp_path)
    assert folder.exists() == kept


def test_a_folder_without_owner_in_use_is_kept(tmp_path):
    folder = tmp_path / "mixsize-ray-used"
    folder.mkdir()
    t = time.time() - 2 * ORPHAN_AGE_S
    os.utime(folder, (t, t))
    agent = _user_of(folder)
    try:
        assert reap_stale(root=tmp_path) == [] and agent.poll() is None
    finally:
        agent.kill()
        agent.wait()


def test_other_folders_are_not_touched(tmp_path):
    other = tmp_path / "ray-session"
    _dead_driver(other)
    assert reap_stale(root=tmp_path) == [] and other.exists()
