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
worker group at a time). The search driver frees them every 10 s (``tune.orphan_groups.OrphanGroupReaper``)
and prints one line each; the driver of a ``train`` run whose cluster has no State API (a local cluster: no
dashboard), where Train's own cleaner cannot see its controller and is left out, does the same from a thread
(:class:`GroupReaper`).

Reads the GCS placement-group table through ``ray._private.state`` (the public ``placement_group_table``
leaves out the creator); Ray is pinned (``ray==2.60.0``), and ``tests/unit/train/test_orphan_groups.py``
checks these fields on a real local cluster, so an upgrade that moves them fails CI.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


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


class GroupReaper:
    """Frees this job's orphan groups every ``interval_s`` seconds from a daemon thread while a ``train``
    driver waits in ``fit()``, printing one line for each (``say``)::

        train freed placement group 92886901d05f (1 CPU): its Ray Train run replaced workers that died while starting

    Used where Ray Train's ``PlacementGroupCleaner`` cannot work (no State API: see
    :func:`serves_state_api`). A table it cannot read is reported once and ends the
    thread; training goes on.

    Example:
        >>> with GroupReaper("01000000", interval_s=3600) as r:  # doctest: +SKIP
        ...     trainer.fit()
    """

    def __init__(self, job_id: str, interval_s: float = 10.0, say: Callable[[str], None] = print):
        self.job_id, self.interval_s, self.say = job_id, interval_s, say
        self.freed: list[Orphan] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mixsize-ray-group-reaper", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                freed = reap(self.job_id)
            except Exception as e:  # never let housekeeping end a run
                self.say(f"train cannot read Ray's placement groups ({type(e).__name__}: {e}); groups of workers "
                         "that die while starting will not be freed")
                return
            for o in freed:
                self.freed.append(o)
                self.say(f"train freed placement group {o.group.group_id[:12]} ({o.group.cpus:g} CPU): {WHY[o.reason]}")

    def __enter__(self) -> GroupReaper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def serves_state_api() -> bool:
    """Whether the connected cluster serves Ray's State API, which Ray Train's ``PlacementGroupCleaner`` needs
    to see whether its controller is alive: asked the way the cleaner asks (one ``list_actors`` call).

    A local cluster (``include_dashboard=False``) still runs a minimal dashboard head that registers its
    address, but without the State API module (``--modules-to-load=UsageStatsHead``): the call fails there.
    ``ray start --head`` loads the full dashboard by default, and the call succeeds.
    """
    from ray.util.state import list_actors
    from ray.util.state.exception import RayStateApiException

    try:
        list_actors(limit=1, timeout=10, raise_on_missing_output=False)
    except (RayStateApiException, ConnectionError):
        return False
    return True


def without_train_cleaner(trainer_cls: type) -> type:
    """``trainer_cls`` minus Ray Train's ``PlacementGroupCleanerCallback``, for a cluster without State API.

    There the cleaner cannot query its controller and logs "Failed to query Ray Train Controller actor state.
    State API may be temporarily unavailable" every few seconds for the whole run (584 of 694 console lines of
    an 8-epoch `train`) while freeing nothing. What it would free is freed instead by :class:`GroupReaper` in
    a `train` driver and by the search's ``OrphanGroupReaper`` in a Tune trial, and every group of a local
    cluster goes with it when its driver ends. Overrides Ray Train V2's ``_create_default_callbacks`` (pinned
    Ray; ``tests/unit/train/test_orphan_groups.py`` checks the override still removes the cleaner).
    """
    from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback

    class Trainer(trainer_cls):
        def _create_default_callbacks(self):
            return [c for c in super()._create_default_callbacks()
                    if not isinstance(c, PlacementGroupCleanerCallback)]

    Trainer.__name__ = Trainer.__qualname__ = trainer_cls.__name__
    return Trainer
