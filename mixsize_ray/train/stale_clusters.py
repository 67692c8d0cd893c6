"""Local Ray clusters whose driver was killed: found and stopped by the next command.

A private local cluster (:func:`mixsize_ray.train.cluster.connect`) lives in its own temp folder
``/tmp/mixsize-ray-*`` (``mixsize-tune-*`` for a search). A driver that ends normally stops Ray and removes
the folder. One killed with SIGKILL cannot: Ray's agents outlive it for a minute or more and the folder stays.
So each folder holds an :data:`OWNER_FILE` naming its driver (pid and start time, so a reused pid is not
mistaken for it), and the next command that starts a local cluster calls :func:`reap_stale`: for every
folder whose driver is gone it stops the processes still running from that folder (SIGTERM, then SIGKILL)
and removes the folder. Folders of live drivers (a concurrent run) are left alone.

Example:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> live = claim(root / "mixsize-ray-a")  # this process is its driver
    >>> reap_stale(("mixsize-ray-",), root=root)
    []
    >>> live.is_dir()
    True
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

OWNER_FILE = "mixsize-driver.json"
ORPHAN_AGE_S = 3600.0  # a folder without an owner file (an older version's) is removed after this long idle
PREFIXES = ("mixsize-ray-", "mixsize-tune-")


@dataclass(frozen=True)
class Reaped:
    """One stale cluster cleaned up: its folder and how many of its processes were stopped."""

    folder: Path
    stopped: int

    def __str__(self) -> str:
        return f"{self.folder} ({self.stopped} processes stopped)"


def claim(folder: Path) -> Path:
    """Create ``folder`` (if needed) and record this process as its driver."""
    folder.mkdir(parents=True, exist_ok=True)
    me = psutil.Process()
    (folder / OWNER_FILE).write_text(json.dumps({"pid": me.pid, "started": me.create_time()}))
    return folder


def _driver_alive(folder: Path) -> bool | None:
    """True/False from the owner file; None when the folder has none (or it cannot be read)."""
    try:
        owner = json.loads((folder / OWNER_FILE).read_text())
        pid, started = int(owner["pid"]), float(owner["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        p = psutil.Process(pid)
        return abs(p.create_time() - started) < 1.0 and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def users_of(folder: Path) -> list[psutil.Process]:
    """Processes whose command line names ``folder`` (Ray's raylet, GCS, agents and workers do)."""
    key, me, out = str(folder), os.getpid(), []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if p.info["pid"] != me and any(key in arg for arg in (p.info["cmdline"] or [])):
                out.append(p)
        except psutil.Error:
            continue
    return out


def _stop(procs: list[psutil.Process], grace_s: float) -> None:
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=grace_s)


def reap_stale(prefixes: Iterable[str] = PREFIXES, root: Path | None = None, grace_s: float = 5.0) -> list[Reaped]:
    """Stop and remove the local clusters under ``root`` (default: the temp folder) whose driver is gone.

    A folder without an owner file is removed only when no process uses it and it has been idle for
    :data:`ORPHAN_AGE_S`. Returns what was cleaned up."""
    import tempfile

    root = Path(root or tempfile.gettempdir())
    out: list[Reaped] = []
    for prefix in prefixes:
        for folder in sorted(root.glob(f"{prefix}*")):
            if not folder.is_dir():
                continue
            alive = _driver_alive(folder)
            if alive:
                continue
            users = users_of(folder)
            if alive is None and (users or time.time() - folder.stat().st_mtime < ORPHAN_AGE_S):
                continue
            _stop(users, grace_s)
            shutil.rmtree(folder, ignore_errors=True)
            out.append(Reaped(folder, len(users)))
    return out
