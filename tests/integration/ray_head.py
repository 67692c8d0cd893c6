"""A real `ray start --head` on loopback ports with its own temp dir and auth token; stopped (that cluster
only) on exit. Used by the job-submit and the live-metrics tests."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.integration.conftest import free_port

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class RayHead:
    """A running head: its job/dashboard ``address``, the ``env`` that reaches it (token), its temp dir,
    and its metrics export port (None when not asked for)."""

    address: str
    env: dict[str, str]
    temp_dir: Path
    metrics_port: int | None
    gcs: str = ""


def _processes_using(temp_dir: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", str(temp_dir)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out if int(p) != os.getpid()]


@contextlib.contextmanager
def ray_head(tmp_path: Path, shapes_cache: Path, metrics: bool = False,
             extra_env: dict[str, str] | None = None, num_cpus: int = 3) -> Iterator[RayHead]:
    """Start a head (``num_cpus`` logical CPUs, dashboard on 127.0.0.1), wait until it takes jobs, yield,
    stop it."""
    temp_dir = Path("/tmp") / f"mxr-head-{secrets.token_hex(3)}"  # short: Ray's socket paths are length-capped
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN_PATH": str(token), "OMP_NUM_THREADS": "1",
           "MIXSIZE_RAY_DATA_DIR": str(shapes_cache), **(extra_env or {})}
    env.pop("RAY_ADDRESS", None)
    gcs, dash, client, agent = (free_port() for _ in range(4))
    metrics_port = free_port() if metrics else None
    args = [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
            "--port", str(gcs), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
            "--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent),
            "--temp-dir", str(temp_dir), "--num-cpus", str(num_cpus), "--include-dashboard", "true"]
    if metrics_port:
        args += ["--metrics-export-port", str(metrics_port)]
    head = subprocess.Popen(args, env=env, start_new_session=True, stdout=open(tmp_path / "head.log", "w"),
                            stderr=subprocess.STDOUT)
    try:
        address = f"http://127.0.0.1:{dash}"
        deadline = time.monotonic() + 120
        while True:
            probe = subprocess.run([str(BIN / "ray"), "job", "list", "--address", address], env=env,
                                   capture_output=True, text=True)
            if probe.returncode == 0:
                break
            assert head.poll() is None, (tmp_path / "head.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "ray head did not come up in 120 s"
            time.sleep(2)
        yield RayHead(address, env, temp_dir, metrics_port, gcs=f"127.0.0.1:{gcs}")
    finally:
        _stop(head, temp_dir)


def _stop(node: subprocess.Popen, temp_dir: Path) -> None:
    """Stop THIS node only: SIGTERM the blocking `ray start` and its process group, then every process still
    running from its temp dir (Ray's workers and agents run in sessions of their own); SIGKILL what is left
    after 10 s."""
    os.killpg(node.pid, signal.SIGTERM)
    try:
        node.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(node.pid, signal.SIGKILL)
        node.wait()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _processes_using(temp_dir):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while _processes_using(temp_dir) and time.monotonic() < deadline:
            time.sleep(0.5)


@contextlib.contextmanager
def ray_worker_node(head: RayHead, tmp_path: Path, num_cpus: int = 2) -> Iterator[Path]:
    """A second node joined to ``head`` with `ray start --address` (its own temp dir); yields the temp dir."""
    temp_dir = Path("/tmp") / f"mxr-node-{secrets.token_hex(3)}"
    node = subprocess.Popen(
        [str(BIN / "ray"), "start", "--block", "--address", head.gcs, "--node-ip-address", "127.0.0.1",
         "--temp-dir", str(temp_dir), "--num-cpus", str(num_cpus)],
        env=head.env, start_new_session=True, stdout=open(tmp_path / "node.log", "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in (tmp_path / "node.log").read_text():  # registered with the GCS
            assert node.poll() is None, (tmp_path / "node.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the second node did not come up in 120 s"
            time.sleep(1)
        yield temp_dir
    finally:
        _stop(node, temp_dir)
