"""Fault injection for the recovery tests: a worker that dies hard at a chosen point, once per run folder.

``train.inject_fault: after_log@E`` makes rank 0 call ``os._exit`` right after epoch ``E``'s metrics reached
MLflow and before that epoch's checkpoint is reported: the worst moment for duplicated history. A marker
file in the run folder makes the fault fire once, so Ray Train's restart (``train.max_failures``) runs on.

Example:
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> should_fail("after_log@1", "after_log", epoch=0, run_dir=d), should_fail(None, "after_log", 1, d)
    (False, False)
    >>> should_fail("after_log@1", "after_log", epoch=1, run_dir=d)  # fires: the caller exits
    True
    >>> should_fail("after_log@1", "after_log", epoch=1, run_dir=d)  # the restarted worker goes on
    False
"""

from __future__ import annotations

import os
from pathlib import Path


def should_fail(spec: str | None, point: str, epoch: int, run_dir: str) -> bool:
    """True once for ``spec`` == ``f"{point}@{epoch}"`` (the marker ``.fault-<point>-<epoch>`` in ``run_dir``)."""
    if spec != f"{point}@{epoch}" or "://" in run_dir:
        return False
    marker = Path(run_dir) / f".fault-{point}-{epoch}"
    if marker.exists():
        return False
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(os.getpid()))
    return True


def die() -> None:
    """Exit the worker process at once, as a preempted machine or an OOM kill would (no cleanup)."""
    os._exit(17)
