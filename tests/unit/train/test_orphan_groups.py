"""Orphan placement groups (a Train run lost with its node, or one that replaced workers that died while
starting): which groups count, that a real Ray keeps such groups until the job ends (the premise), that
:func:`reap` frees exactly those, the driver-side reaper's lines, and the trainer without Ray Train's cleaner where no State API serves it.
The search's Tune callback is tested in tests/unit/tune/test_orphan_groups.py."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mixsize_ray.train import orphan_groups
from mixsize_ray.train.orphan_groups import GroupReaper, GroupRecord, Orphan, orphans, read_groups, reap

JOB = "02000000"
ROOT = Path(__file__).resolve().parents[3]


def _group(gid: str, **kw) -> GroupRecord:
    base = {"group_id": gid, "job_id": JOB, "state": "CREATED", "creator_actor": "c" + gid,
            "creator_actor_dead": True, "detached": False, "cpus": 1.0, "created_ms": 0}
    return GroupRecord(**{**base, **kw})


@pytest.mark.parametrize(("kw", "orphan"), [
    ({}, True),
    ({"state": "RESCHEDULING"}, True),  # its bundles were on the dead node and wait for a new home
    ({"state": "PENDING"}, True),
    ({"state": "REMOVED"}, False),
    ({"creator_actor_dead": False}, False),  # a live Train controller's workers
    ({"creator_actor": None}, False),  # a driver's group (Tune's trial groups): the job owns it
    ({"detached": True}, False),
    ({"job_id": "03000000"}, False),  # another job's
])
def test_which_groups_are_orphans(kw, orphan):
    assert orphans([_group("aa", **kw)], JOB) == ([Orphan(_group("aa", **kw), "lost")] if orphan else [])


def test_a_live_creators_older_group_is_an_orphan_once_it_made_a_newer_one():
    """A Train controller runs one worker group at a time: an older group it still holds was never removed
    (its workers died while starting) and blocks the newer one."""
    old = _group("aa", creator_actor="c1", creator_actor_dead=False, created_ms=1000)
    new = _group("bb", creator_actor="c1", creator_actor_dead=False, created_ms=61000, state="PENDING")
    other = _group("cc", creator_actor="c2", creator_actor_dead=False, created_ms=500)
    assert orphans([old, new, other], JOB) == [Orphan(old, "replaced")]
    assert orphans([new, other], JOB) == []
    assert orphans([_group("dd", creator_actor="c1", creator_actor_dead=False, created_ms=10, state="REMOVED"),
                    new], JOB) == []


@contextlib.contextmanager
def _own_ray():
    """A Ray of this process's own (4 CPUs, own temp dir); the scenario runs in a fresh interpreter so that
    it never meets the session's shared cluster (``tests/integration/conftest.py``)."""
    import ray

    temp = Path("/tmp") / f"mxr-og-{secrets.token_hex(3)}"  # short: Ray's socket paths are length-capped
    ray.init(num_cpus=4, include_dashboard=False, _temp_dir=str(temp), log_to_driver=False,
             configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.integration
def test_lost_and_replaced_groups_are_held_until_freed_and_only_they_are_freed():
    """Runs :func:`_scenario` in a fresh interpreter: its assertions fail that process and show here."""
    code = "from tests.unit.train.test_orphan_groups import _scenario; _scenario()"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-4000:]


def _scenario() -> None:
    """Three controllers' groups on a real cluster: a killed one's, a live one's superseded one, the live
    one's newer one, plus a driver's group; :func:`reap` must free exactly the first two. The cluster (no
    dashboard) serves no State API, and Ray Train's default callbacks there lose the cleaner."""
    with _own_ray() as ray:
        _check_reap(ray)
        _check_no_cleaner_without_state_api()


def _check_no_cleaner_without_state_api() -> None:
    from ray.train.torch import TorchTrainer
    from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback

    assert orphan_groups.serves_state_api() is False
    kept = TorchTrainer(lambda: None)._create_default_callbacks()
    assert any(isinstance(c, PlacementGroupCleanerCallback) for c in kept)  # Ray's default has it
    trainer = orphan_groups.without_train_cleaner(TorchTrainer)(lambda: None)
    left = trainer._create_default_callbacks()
    assert not any(isinstance(c, PlacementGroupCleanerCallback) for c in left)
    assert len(left) == len(kept) - 1 and type(trainer).__name__ == "TorchTrainer"


def _check_reap(ray) -> None:
    from ray.util.placement_group import placement_group

    @ray.remote(num_cpus=0)
    class Controller:  # creates its workers' group, as Ray Train's controller does
        def make(self) -> str:
            time.sleep(0.01)  # distinct creation times (ms)
            pg = placement_group([{"CPU": 1}])
            ray.get(pg.ready(), timeout=60)
            return pg.id.hex()

    lost, live = Controller.remote(), Controller.remote()
    lost_id, live_id = ray.get([lost.make.remote(), live.make.remote()], timeout=120)
    trial = placement_group([{"CPU": 0.5}])  # created by the driver, like Tune's trial groups
    ray.get(trial.ready(), timeout=60)
    ray.kill(lost)  # the controller dies (its node was lost); nothing removes its group
    replacement = ray.get(live.make.remote(), timeout=60)  # live asks for new workers, keeping the old group

    deadline = time.monotonic() + 30
    while not {g.group_id: g for g in read_groups()}[lost_id].creator_actor_dead:
        assert time.monotonic() < deadline, "the GCS never marked the creator dead"
        time.sleep(0.2)
    time.sleep(1.0)
    groups = {g.group_id: g for g in read_groups()}
    assert groups[lost_id].state == "CREATED"  # the premise: Ray holds it until the job ends
    assert groups[lost_id].cpus == 1.0 and groups[lost_id].job_id == ray.get_runtime_context().get_job_id()
    assert groups[trial.id.hex()].creator_actor is None

    removed = reap(ray.get_runtime_context().get_job_id())
    assert sorted((o.group.group_id, o.reason) for o in removed) == sorted([(lost_id, "lost"), (live_id, "replaced")])
    states = {g.group_id: g.state for g in read_groups()}
    assert [states[g] for g in (lost_id, live_id, replacement, trial.id.hex())] == [
        "REMOVED", "REMOVED", "CREATED", "CREATED"]
    deadline = time.monotonic() + 10
    while abs(ray.available_resources().get("CPU", 0.0) - 2.5) > 1e-6:  # 4 - replacement's 1 - trial's 0.5
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.2)
    assert reap(ray.get_runtime_context().get_job_id()) == []


def test_the_driver_reaper_frees_each_interval_and_says_what_it_freed(monkeypatch):
    calls, lines = [], []

    def fake_reap(job_id):
        calls.append(job_id)
        return [Orphan(_group("6320054b820cbd21f0576a1819c402000000", creator_actor_dead=False), "replaced")]

    monkeypatch.setattr(orphan_groups, "reap", fake_reap)
    with GroupReaper(JOB, interval_s=0.05, say=lines.append) as reaper:
        deadline = time.monotonic() + 30
        while len(calls) < 2:
            assert time.monotonic() < deadline, "the reaper thread never ran twice"
            time.sleep(0.01)
    n = len(calls)
    time.sleep(0.2)
    assert len(calls) == n  # stopped with the block
    assert lines[0] == ("train freed placement group 6320054b820c (1 CPU): its Ray Train run replaced workers "
                        "that died while starting") and len(reaper.freed) == len(lines) == n


def test_a_driver_reaper_that_cannot_read_the_table_says_so_once(monkeypatch):
    calls, lines = [], []

    def broken(job_id):
        calls.append(job_id)
        raise AttributeError("no get_placement_group_table")

    monkeypatch.setattr(orphan_groups, "reap", broken)
    with GroupReaper(JOB, interval_s=0.01, say=lines.append):
        time.sleep(0.3)
    assert calls == [JOB] and lines == [
        "train cannot read Ray's placement groups (AttributeError: no get_placement_group_table); groups of "
        "workers that die while starting will not be freed"]
