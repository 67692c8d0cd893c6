"""The loopback rendezvous: rank 0 serves torch's TCPStore on a socket it bound to 127.0.0.1, every rank joins
through it, and the process group works; nothing listens beyond loopback (two real gloo processes)."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from mixsize_ray.train.rendezvous import RendezvousBackend, RendezvousConfig, is_loopback


def _rank(world_rank: int, port: int | None, port_q, out_q) -> None:
    """One rank in its own process: rank 0 opens the listener and tells its port; both join and all-reduce."""
    import psutil
    import torch
    import torch.distributed as dist

    from mixsize_ray.train import rendezvous

    if world_rank == 0:
        port = rendezvous.open_listener()
        port_q.put(port)
    rendezvous.join("gloo", world_rank, 2, port, timeout_s=60)
    t = torch.tensor([float(world_rank + 1)])
    dist.all_reduce(t)
    listening = sorted({c.laddr.ip for c in psutil.Process().net_connections("inet") if c.status == psutil.CONN_LISTEN})
    dist.barrier()
    dist.destroy_process_group()
    out_q.put((world_rank, t.item(), listening))


@pytest.mark.timeout(120)
def test_two_ranks_rendezvous_on_loopback_only():
    ctx = mp.get_context("spawn")
    port_q, out_q = ctx.Queue(), ctx.Queue()
    r0 = ctx.Process(target=_rank, args=(0, None, port_q, out_q))
    r0.start()
    r1 = ctx.Process(target=_rank, args=(1, port_q.get(timeout=60), port_q, out_q))
    r1.start()
    results = sorted(out_q.get(timeout=90) for _ in range(2))
    r0.join(30), r1.join(30)
    assert [(rank, total) for rank, total, _ in results] == [(0, 3.0), (1, 3.0)]  # the group works
    for _, _, addresses in results:
        assert addresses and all(is_loopback(a.removeprefix("::ffff:")) for a in addresses), addresses


def test_config_keeps_torch_configs_fields_and_picks_the_loopback_backend():
    cfg = RendezvousConfig(backend="gloo", timeout_s=60)
    assert cfg.backend_cls is RendezvousBackend and cfg.to_dict() == {"backend": "gloo", "init_method": "env",
                                                                        "timeout_s": 60}
    assert [is_loopback(a) for a in ("127.0.0.1", "127.1.2.3", "::1", "192.0.2.2", "localhost", "")] == [
        True, True, True, False, False, False]
