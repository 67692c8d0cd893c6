"""Atomic file writes: a same-folder temp file, fsync, then ``os.replace``.

A crash or kill mid-write leaves the previous file (or none), never a partial one.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> with atomic_writer(p) as f:
    ...     _ = f.write(b"hello")
    >>> p.read_bytes()
    b'hello'
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_writer(path: str | Path) -> Iterator[BinaryIO]:
    """Open a binary temp file beside ``path``; on clean exit it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_writer(path) as f:
        f.write(data)
    return Path(path)


def creatable(folder: str | Path) -> str | None:
    """None when ``folder`` is (or could be made as) a writable folder, else the reason. Checked on its
    nearest existing ancestor with a folder made and removed at once, so nothing is left behind (a refused
    run creates nothing) and read-only mounts and /proc-like trees are caught.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> creatable(d / "a" / "b"), (d / "a").exists()
        (None, False)
        >>> _ = (d / "file").write_text("")
        >>> creatable(d / "file" / "runs")
        'is not a folder: ...file'
    """
    p = Path(folder).expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        return f"is not a folder: {p}"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".mixsize-write-test-", dir=p))
    except OSError as e:
        return f"{p}: {e.strerror or type(e).__name__}"
    return None
