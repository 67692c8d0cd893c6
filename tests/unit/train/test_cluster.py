"""The one place that connects to Ray: what a local cluster declares, and addresses checked in one line."""

from __future__ import annotations

import socket

import pytest

from mixsize_ray.errors import ConfigError
from mixsize_ray.train.cluster import ClusterRequest, check_address


@pytest.mark.parametrize(("need", "cpus", "want"), [(2.0, 2, 2), (0.5, 4, 4), (6.5, 2, 7), (4.0, 2, 4)])
def test_local_cluster_declares_all_cpus_or_what_the_run_needs(need, cpus, want):
    assert ClusterRequest(None, num_cpus=need).local_cpus(os_cpus=cpus) == want


@pytest.mark.parametrize("address", ["nonsense", "host:notaport", "ray://:10001"])
def test_malformed_address_is_named(address):
    with pytest.raises(ConfigError) as e:
        check_address(address)
    assert "ray.address" in str(e.value) and "host:port" in str(e.value) and address in str(e.value)
    assert "\n" not in str(e.value)


def test_unreachable_address_is_refused_and_a_listening_one_passes():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConfigError, match="a reachable Ray cluster"):
        check_address(f"127.0.0.1:{port}", timeout=1.0)
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        check_address(f"ray://127.0.0.1:{srv.getsockname()[1]}", timeout=1.0)
    check_address("auto")


def test_single_node_mode_keeps_loopback_and_is_restored():
    """Ray resolves 127.0.0.1 to the machine's address unless it runs single-node; the switch holds only while
    a local cluster starts (a multi-node `ray start` from the same process stays possible afterwards)."""
    from ray._private import ray_constants, services

    from mixsize_ray.train.cluster import LOOPBACK, single_node

    before = ray_constants.ENABLE_RAY_CLUSTER
    with single_node():
        assert services.resolve_ip_for_localhost(LOOPBACK) == LOOPBACK
        assert ray_constants.ENABLE_RAY_CLUSTER is False
    assert ray_constants.ENABLE_RAY_CLUSTER == before is True
    with pytest.raises(RuntimeError), single_node():
        raise RuntimeError("a failed start")
    assert ray_constants.ENABLE_RAY_CLUSTER is True
