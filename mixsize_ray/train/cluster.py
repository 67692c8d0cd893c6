"""The one place that connects to Ray: an existing cluster (``ray.address`` / RAY_ADDRESS) or a private
local one on loopback. ``mixsize-ray train`` and ``mixsize-ray tune`` both come through :func:`connect`.

Example:
    >>> req = ClusterRequest(address=None, num_cpus=2.0, quiet=True)
    >>> req.local_cpus(os_cpus=2), ClusterRequest(None, num_cpus=6.5).local_cpus(os_cpus=2)
    (2, 7)
    >>> started = connect(req)  # doctest: +SKIP
    >>> disconnect()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from mixsize_ray.errors import ConfigError


@dataclass(frozen=True)
class ClusterRequest:
    """What a run needs from Ray.

    address: ``host:port``, ``ray://host:port``, ``http://host:port``, ``auto``, or None for a local cluster.
    num_cpus: CPUs the run's workers (and trial drivers) hold at once; a local cluster gets at least this.
    quiet: keep workers' logs out of the driver's console (a search prints one line per trial instead).
    temp_prefix: the local cluster's own temp folder prefix (its logs and sockets).
    """

    address: str | None
    num_cpus: float
    quiet: bool = False
    temp_prefix: str = "mixsize-ray-"

    def local_cpus(self, os_cpus: int | None = None) -> int:
        """CPUs a local cluster declares: all of this machine's, or more when the run asks for more (Ray
        then time-shares them; the run still starts)."""
        return max(os_cpus or os.cpu_count() or 1, math.ceil(self.num_cpus - 1e-9))


def check_address(address: str, timeout: float = 5.0) -> None:
    """TCP-connect to a Ray address (``host:port``, ``ray://host:port``, ``http://host:port``); ``auto`` and
    ``local`` are left to Ray. An unreachable one raises a one-line :class:`ConfigError`."""
    if address in ("auto", "local"):
        return
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parsed.hostname, parsed.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise ConfigError("ray.address", "host:port, ray://host:port or http://host:port", address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        raise ConfigError("ray.address", "a reachable Ray cluster", address,
                          hint=e.strerror or type(e).__name__) from None


_LOCAL_TEMP: list[str] = []  # temp folders of local clusters this process started


def disconnect() -> None:
    """Shut down the Ray this process started and remove its local cluster's temp folder (logs and
    sockets under ``/tmp/<temp_prefix>*``), so runs do not pile up folders."""
    import shutil

    import ray

    ray.shutdown()
    while _LOCAL_TEMP:
        shutil.rmtree(_LOCAL_TEMP.pop(), ignore_errors=True)


def connect(req: ClusterRequest) -> bool:
    """Connect to ``req.address`` or start a local cluster (every process on 127.0.0.1, no dashboard; see
    :func:`single_node`). Returns True when
    this call initialised Ray (the caller then calls :func:`disconnect`); False when Ray was already up.
    Before a local cluster starts, those that killed drivers left behind are stopped and their folders
    removed (:mod:`mixsize_ray.train.stale_clusters`)."""
    import ray

    if ray.is_initialized():
        return False
    level = logging.WARNING if req.quiet else logging.INFO
    if req.address:
        ray.init(address=req.address, log_to_driver=not req.quiet, logging_level=level)
        return True
    from mixsize_ray.train.stale_clusters import claim, reap_stale

    for gone in reap_stale():  # local clusters of killed drivers: their agents and folders
        print(f"stopped a local Ray cluster left by a killed run: {gone}", flush=True)
    _LOCAL_TEMP.append(str(claim(Path(tempfile.mkdtemp(prefix=req.temp_prefix)))))
    with single_node():
        ray.init(
            num_cpus=req.local_cpus(),
            include_dashboard=False,
            _node_ip_address=LOOPBACK,
            _temp_dir=_LOCAL_TEMP[-1],
            log_to_driver=not req.quiet,
            logging_level=level,
        )
    node_ip = ray.util.get_node_ip_address()
    if node_ip != LOOPBACK:  # never run a private cluster on a shared network by surprise
        disconnect()
        raise RuntimeError(f"the local Ray cluster came up on {node_ip}, not {LOOPBACK}: this Ray ignores the "
                           "single-node switch (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER); refusing to run on it")
    return True


LOOPBACK = "127.0.0.1"


@contextmanager
def single_node() -> Iterator[None]:
    """While a local cluster starts: Ray's single-node mode, whose node address is loopback.

    Ray turns ``_node_ip_address="127.0.0.1"`` (and ``ray start --node-ip-address 127.0.0.1``) into the
    machine's own address (``services.resolve_ip_for_localhost``), and its GCS, raylet, workers and agents
    then listen on every interface. Only in single-node mode (``ray_constants.ENABLE_RAY_CLUSTER`` false,
    what ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` sets at import, and Ray's default on macOS and Windows)
    does it keep loopback, and every process of the cluster then binds ``127.0.0.1`` (checked with psutil in
    ``tests/integration/test_loopback.py``). Set for this process only and restored afterwards, so that a
    ``ray start`` of a real multi-node cluster from the same environment is unaffected.
    """
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved
