"""The process-group rendezvous of a run, on loopback when its cluster is the local single-node one.

Ray Train's ``TorchConfig`` (``init_method="env"``) has rank 0 start torch's ``TCPStore`` server at
``MASTER_ADDR:MASTER_PORT``; that server listens on every interface (``::``) whatever ``MASTER_ADDR`` says,
so on a local cluster it was the one port of a `mixsize-ray train` run reachable from the network (found by
``tests/integration/test_demo_cli.py``, which lists every listening socket of a real run). gloo and
NCCL pick their interface from the host name unless told.

:class:`RendezvousConfig` keeps Ray Train's setup on a real cluster (rank 0's node address is not
loopback) and, on a loopback cluster, does the same steps with every socket on 127.0.0.1: rank 0 opens the
listening socket itself and hands it to ``TCPStore`` (``master_listen_fd``), and ``GLOO_SOCKET_IFNAME`` /
``NCCL_SOCKET_IFNAME`` name the loopback interface. The process group is the same (same backend, ranks,
world size and timeout); only where it listens changes.

Example:
    >>> RendezvousConfig(backend="gloo").backend_cls.__name__
    'RendezvousBackend'
    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("10.0.0.3")
    (True, True, False)
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ray.train.torch.config import TorchConfig, _set_torch_distributed_env_vars, _TorchBackend

LOOPBACK_IFNAME = "lo"
_HELD: list[Any] = []  # rank 0's listening socket and store: alive as long as the worker process


def is_loopback(address: str) -> bool:
    """Whether ``address`` is a loopback IP (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def node_address() -> str:
    """This worker's node address (Ray's view)."""
    import ray

    return ray.util.get_node_ip_address()


def open_listener() -> int:
    """On rank 0: a TCP socket listening on 127.0.0.1 (a free port), kept open; returns the port."""
    _HELD.clear()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    _HELD.append(sock)
    return sock.getsockname()[1]


def join(backend: str, world_rank: int, world_size: int, port: int, timeout_s: int) -> None:
    """On every rank: the process group through a ``TCPStore`` on ``127.0.0.1:port`` (rank 0 serves it on
    the socket of :func:`open_listener`), with gloo and NCCL on the loopback interface."""
    import torch.distributed as dist

    os.environ.setdefault("GLOO_SOCKET_IFNAME", LOOPBACK_IFNAME)
    os.environ.setdefault("NCCL_SOCKET_IFNAME", LOOPBACK_IFNAME)
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)  # as env:// would leave them
    timeout = timedelta(seconds=timeout_s)
    master = world_rank == 0
    store = dist.TCPStore("127.0.0.1", port, world_size, is_master=master, timeout=timeout, wait_for_workers=False,
                          master_listen_fd=_HELD[0].fileno() if master else None)
    if master:
        _HELD.append(store)
    dist.init_process_group(backend=backend, store=store, rank=world_rank, world_size=world_size, timeout=timeout)


class RendezvousBackend(_TorchBackend):
    """Ray Train's torch backend, with the loopback rendezvous of the module docstring on a loopback cluster."""

    def on_start(self, worker_group: Any, backend_config: TorchConfig) -> None:
        import ray

        if not is_loopback(worker_group.execute_single(0, node_address)):
            super().on_start(worker_group, backend_config)
            return
        backend = backend_config.backend or "gloo"
        port = worker_group.execute_single(0, open_listener)
        worker_group.execute(_set_torch_distributed_env_vars)
        ray.get([worker_group.execute_single_async(i, join, backend=backend, world_rank=i, world_size=len(worker_group),
                                                   port=port, timeout_s=backend_config.timeout_s)
                 for i in range(len(worker_group))])


@dataclass
class RendezvousConfig(TorchConfig):
    """``TorchConfig`` whose backend is :class:`RendezvousBackend` (same fields, same defaults)."""

    @property
    def backend_cls(self) -> type:
        return RendezvousBackend
