"""The search's Tune callback over :func:`mixsize_ray.train.orphan_groups.reap`: once per interval, one line
per freed group, a restored callback runs at once, an unreadable table is said once (which groups count, and
the real-cluster premise, are tested in tests/unit/train/test_orphan_groups.py)."""

from __future__ import annotations

from mixsize_ray.tune import orphan_groups
from mixsize_ray.tune.orphan_groups import GroupRecord, Orphan, OrphanGroupReaper

JOB = "02000000"


def _group(gid: str, **kw) -> GroupRecord:
    base = {"group_id": gid, "job_id": JOB, "state": "CREATED", "creator_actor": "c" + gid,
            "creator_actor_dead": True, "detached": False, "cpus": 1.0, "created_ms": 0}
    return GroupRecord(**{**base, **kw})


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
