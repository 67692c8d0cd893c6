"""A real ``mlflow server`` (tracking API + UI) on the run store, bound to loopback by default.

Used by ``mixsize-ray ui`` and by the integration tests. The server runs in its own process group so
that stopping it (:func:`stop_server`) also stops uvicorn and MLflow's job runner that it spawns.

Example:
    >>> server_command("sqlite:////tmp/mlflow.db", port=5001)[-8:]
    ['--host', '127.0.0.1', '--port', '5001', '--workers', '1', '--backend-store-uri', 'sqlite:////tmp/mlflow.db']
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from mixsize_ray.errors import ConfigError

LOOPBACK = "127.0.0.1"


def server_command(backend_store_uri: str, host: str = LOOPBACK, port: int = 5000, workers: int = 1,
                   artifacts_destination: str | None = None) -> list[str]:
    """``python -m mlflow server ...`` for the given store (artifacts proxied to ``artifacts_destination``
    when given, else MLflow's default ``./mlartifacts``)."""
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port), "--workers",
           str(workers), "--backend-store-uri", backend_store_uri]
    if artifacts_destination:
        cmd += ["--artifacts-destination", artifacts_destination]
    return cmd


def check_port_free(host: str, port: int) -> None:
    """One-line ConfigError if ``host:port`` cannot be bound."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds (TIME_WAIT is fine)
        try:
            s.bind((host, port))
        except OSError as e:
            raise ConfigError("--port", "a free port on the host", f"{host}:{port}", hint=e.strerror) from None


def wait_healthy(url: str, timeout_s: float = 60.0, proc: subprocess.Popen | None = None) -> float:
    """Poll ``url/health`` until it answers OK; return the seconds it took. Raises RuntimeError when
    ``proc`` exits first or ``timeout_s`` passes."""
    t0 = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=2) as r:
                if r.status == 200:
                    return time.monotonic() - t0
        except (urllib.error.URLError, OSError):
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with code {proc.returncode} before answering {url}")
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"mlflow server at {url} did not answer /health within {timeout_s:.0f} s")
        time.sleep(0.25)


def start_server(backend_store_uri: str, host: str = LOOPBACK, port: int = 5000, workers: int = 1,
                 artifacts_destination: str | None = None, log_file: str | Path | None = None,
                 cwd: str | Path | None = None) -> subprocess.Popen:
    """Start the server in a new process group (output to ``log_file`` or inherited); does not wait."""
    check_port_free(host, port)
    out = open(log_file, "ab") if log_file else None  # noqa: SIM115 - handed to the child process
    try:
        return subprocess.Popen(server_command(backend_store_uri, host, port, workers, artifacts_destination),
                                stdout=out, stderr=subprocess.STDOUT if out else None, cwd=cwd,
                                start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    finally:
        if out is not None:
            out.close()


def stop_server(proc: subprocess.Popen, timeout_s: float = 15.0) -> None:
    """SIGTERM the server's process group (the server, uvicorn and huey workers), SIGKILL after ``timeout_s``;
    then any child that left the group (a worker that started its own session) is killed too, so nothing
    the server started outlives it."""
    if proc.poll() is not None:
        return
    children = descendants(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren, ...), from Linux's ``/proc``; [] elsewhere.

    Example:
        >>> import subprocess, sys
        >>> p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
        >>> p.pid in descendants(os.getpid())
        True
        >>> p.kill(); _ = p.wait()
    """
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parent[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out
