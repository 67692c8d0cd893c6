"""Free the placement groups that a lost node's trials leave behind, so that their retries can start.

Why this exists (measured on a 2-node loopback cluster, ``tests/integration/test_cluster_search.py``):
Ray Train V2 runs each trial's Train controller on the trial actor's node, and the controller creates the
worker group's placement group. Ray removes a non-detached group only when its creator *job* ends; Train's
``PlacementGroupCleaner`` removes it earlier when the controller dies, but only once the group is registered
with it, after the workers started. When a node dies between those two moments (a trial starting on a
preempted instance), the group outlives its controller. The GCS then reschedules the group's bundles onto a
surviving node, where they hold CPUs that nothing will ever use, and the retried trials wait for those CPUs
until the search ends: the search hangs. Seen in the GCS log as ``Rescheduling a bundle when a node dies``
for a group whose creator actor had just been killed with the node.

A second leak, seen in the same test: a controller whose new workers die with their node while Train sets
them up (``after_worker_group_start``) reports a startup failure after it has marked the group started, so
the group is not removed; the controller then asks for a new group and keeps the old one, rescheduled onto
the head, for good. Its retries time out every 60 s on the CPU the old group holds.

A group is an orphan here when it belongs to this job, is neither detached nor removed, was created by an
actor (not a driver: Tune's trial groups never count), and either that actor is dead (what Ray itself would
remove when the job ends) or that actor has created a newer group since (a Ray Train controller runs one
worker group at a time). The search driver frees them every 10 s (``OrphanGroupReaper``) and prints one line each.

Reads the GCS placement-group table through ``ray._private.state`` (the public ``placement_group_table``
leaves out the creator); Ray is pinned (``ray==2.60.0``), and ``tests/unit/tune/test_orphan_groups.py``
checks these fields on a real local cluster, so an upgrade that moves them fails CI.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

from ray.tune import Callback


@dataclass(frozen=True)
class GroupRecord:
    """One row of the GCS placement-group table, the fields that decide whether it is an orphan.

    ``creator_actor`` is None for a group a driver created (Tune's trial groups).
    """

    group_id: str
    job_id: str
    state: str
    creator_actor: str | None
    creator_actor_dead: bool
    detached: bool
    cpus: float
    created_ms: int = 0


@dataclass(frozen=True)
class Orphan:
    """A group to free and why: ``"lost"`` (its creator died) or ``"replaced"`` (its creator made a newer one)."""

    group: GroupRecord
    reason: str


def orphans(records: list[GroupRecord], job_id: str) -> list[Orphan]:
    """The groups of ``job_id`` still held whose creator actor is dead or has created a newer group since.

    Example:
        >>> live = GroupRecord("aa", "02000000", "CREATED", "c1", False, False, 1.0, created_ms=1)
        >>> lost = GroupRecord("bb", "02000000", "CREATED", "c2", True, False, 1.0, created_ms=2)
        >>> tune = GroupRecord("cc", "02000000", "CREATED", None, True, False, 0.01, created_ms=3)
        >>> newer = GroupRecord("dd", "02000000", "PENDING", "c1", False, False, 1.0, created_ms=4)
        >>> [(o.group.group_id, o.reason) for o in orphans([live, lost, tune, newer], "02000000")]
        [('aa', 'replaced'), ('bb', 'lost')]
    """
    held = [g for g in records if g.job_id == job_id and g.creator_actor is not None and not g.detached
            and g.state != "REMOVED"]
    newest: dict[str, int] = {}
    for g in held:
        newest[g.creator_actor] = max(newest.get(g.creator_actor, g.created_ms), g.created_ms)
    out = []
    for g in held:
        if g.creator_actor_dead:
            out.append(Orphan(g, "lost"))
        elif g.created_ms < newest[g.creator_actor]:
            out.append(Orphan(g, "replaced"))
    return out


def read_groups() -> list[GroupRecord]:
    """Every placement group the GCS knows, as :class:`GroupRecord` (needs ``ray.init`` first)."""
    import ray
    from ray._private.state import state
    from ray.core.generated import gcs_pb2

    table = gcs_pb2.PlacementGroupTableData
    names = {v: k for k, v in table.PlacementGroupState.items()}
    out = []
    for raw in state._connect_and_get_accessor().get_placement_group_table():
        row = table.FromString(raw)
        creator = ray.ActorID(row.creator_actor_id) if row.creator_actor_id else None
        out.append(GroupRecord(
            group_id=row.placement_group_id.hex(), job_id=row.creator_job_id.hex(), state=names[row.state],
            creator_actor=None if creator is None or creator.is_nil() else creator.hex(),
            creator_actor_dead=row.creator_actor_dead, detached=row.is_detached,
            cpus=sum(b.unit_resources.get("CPU", 0.0) for b in row.bundles),
            created_ms=row.placement_group_creation_timestamp_ms or row.stats.creation_request_received_ns // 10**6))
    return out


def reap(job_id: str) -> list[Orphan]:
    """Remove this job's orphan groups (see the module docstring); returns those removed."""
    import ray
    from ray.util.placement_group import PlacementGroup, remove_placement_group

    removed = []
    for o in orphans(read_groups(), job_id):
        try:
            remove_placement_group(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(o.group.group_id))))
        except Exception:  # removed meanwhile (Train's own cleaner, or the job ending): nothing to free
            continue
        removed.append(o)
    return removed


WHY = {"lost": "its Ray Train run was lost with its node",
       "replaced": "its Ray Train run replaced workers that died while starting"}
"""The end of the line printed for each freed group, by :attr:`Orphan.reason`."""


class OrphanGroupReaper(Callback):
    """Tune callback: frees orphan groups every ``interval_s`` seconds of the search and prints one line for
    each::

        search freed placement group 92886901d05f (1 CPU): its Ray Train run was lost with its node

    Always on, not only after a trial failure: a node can take a trial's workers down while the trial itself
    (on another node) survives and restarts them. One read of the GCS table per interval. If the table cannot
    be read (a Ray that moved the private fields), it says so once and stops; the search goes on.

    Holds only picklable state (Tune saves callbacks with the experiment).
    """

    def __init__(self, interval_s: float = 10.0):
        self.interval_s = interval_s
        self._last = 0.0
        self._off = False

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self._off or 0.0 <= time.monotonic() - self._last < self.interval_s:
            return  # (a _last ahead of the clock came from another process: a resumed search's saved callback)
        self._last = time.monotonic()
        import ray

        try:
            freed = reap(ray.get_runtime_context().get_job_id())
        except Exception as e:  # never let housekeeping end a search
            self._off = True
            print(f"search cannot read Ray's placement groups ({type(e).__name__}: {e}); groups that lost nodes "
                  f"leave will not be freed", file=sys.stdout, flush=True)
            return
        for o in freed:
            print(f"search freed placement group {o.group.group_id[:12]} ({o.group.cpus:g} CPU): {WHY[o.reason]}",
                  file=sys.stdout, flush=True)
