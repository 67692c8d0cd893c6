"""Orphan placement groups (a Train run lost with its node, or one that replaced workers that died while
starting): which groups count, that a real Ray keeps such groups until the job ends (the premise), that
:func:`reap` frees exactly those, and the reaper's line."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mixsize_ray.tune import orphan_groups
from mixsize_ray.tune.orphan_groups import GroupRecord, Orphan, OrphanGroupReaper, orphans, read_groups, reap

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
    code = "from tests.unit.tune.test_orphan_groups import _scenario; _scenario()"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-4000:]


def _scenario() -> None:
    """Three controllers' groups on a real cluster: a killed one's, a live one's superseded one, the live
    one's newer one, plus a driver's group; :func:`reap` must free exactly the first two."""
    with _own_ray() as ray:
        _check_reap(ray)


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


def _fake_ray(monkeypatch):
    import ray

    class Ctx:
        @staticmethod
        def get_job_id():
            return JOB

    monkeypatch.setattr(ray, "get_runtime_context", lambda: Ctx)


def test_the_reaper_frees_once_per_interval_and_says_what_it_freed(monkeypatch, capsys):
    calls = []

    def fake_reap(job_id):
        calls.append(job_id)
        return [Orphan(_group("92886901d05f0e97f7720b1cc9fa02000000"), "lost"),
                Orphan(_group("6320054b820cbd21f0576a1819c402000000", cpus=1.0), "replaced")]

    _fake_ray(monkeypatch)
    monkeypatch.setattr(orphan_groups, "reap", fake_reap)
    clock = iter([100.0, 100.0, 105.0, 110.0, 110.0])
    monkeypatch.setattr(orphan_groups.time, "monotonic", lambda: next(clock))
    reaper = OrphanGroupReaper(interval_s=10.0)
    reaper.on_step_end(1, [])  # t=100: first check
    reaper.on_step_end(2, [])  # t=105: within the interval
    reaper.on_step_end(3, [])  # t=110: second check
    assert calls == [JOB, JOB]
    assert capsys.readouterr().out.splitlines() == [
        "search freed placement group 92886901d05f (1 CPU): its Ray Train run was lost with its node",
        "search freed placement group 6320054b820c (1 CPU): its Ray Train run replaced workers that died while "
        "starting"] * 2


def test_a_reaper_restored_from_another_process_runs_at_once(monkeypatch):
    """Tune saves callbacks with the experiment; a resumed search (another boot's clock) must not wait."""
    calls = []
    _fake_ray(monkeypatch)
    monkeypatch.setattr(orphan_groups, "reap", lambda job_id: calls.append(job_id) or [])
    reaper = OrphanGroupReaper(interval_s=10.0)
    reaper._last = orphan_groups.time.monotonic() + 1e6  # saved by a process whose clock ran ahead
    reaper.on_step_end(0, [])
    assert calls == [JOB]


def test_a_reaper_that_cannot_read_the_table_says_so_once_and_the_search_goes_on(monkeypatch, capsys):
    calls = []

    def broken(job_id):
        calls.append(job_id)
        raise AttributeError("'GlobalStateAccessor' object has no attribute 'get_placement_group_table'")

    _fake_ray(monkeypatch)
    monkeypatch.setattr(orphan_groups, "reap", broken)
    reaper = OrphanGroupReaper(interval_s=0.0)
    for i in range(3):
        reaper.on_step_end(i, [])
    assert calls == [JOB]
    assert capsys.readouterr().out.splitlines() == [
        "search cannot read Ray's placement groups (AttributeError: 'GlobalStateAccessor' object has no attribute "
        "'get_placement_group_table'); groups that lost nodes leave will not be freed"]
