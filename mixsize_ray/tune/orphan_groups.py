"""The search driver's side of freeing orphan placement groups: a Tune callback over
:func:`mixsize_ray.train.orphan_groups.reap` (why groups are orphaned, and which count, is told there)."""

from __future__ import annotations

import sys
import time
from typing import Any

from ray.tune import Callback

from mixsize_ray.train.orphan_groups import WHY, GroupRecord, Orphan, orphans, read_groups, reap

__all__ = ["OrphanGroupReaper", "GroupRecord", "Orphan", "orphans", "read_groups", "reap"]


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
