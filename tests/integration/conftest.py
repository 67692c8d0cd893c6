"""Real services on loopback: a local Ray cluster with its own temp dir (ray.init), shared per session."""

from __future__ import annotations

import os
import socket
import tempfile

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_local():
    """One real local Ray cluster for the in-process integration tests (3 logical CPUs on 2 cores)."""
    import ray

    tmp = tempfile.mkdtemp(prefix="mxr-ray-")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    from mixsize_ray.train.cluster import LOOPBACK, single_node

    with single_node():  # loopback for real, as the product's own local clusters
        ray.init(num_cpus=3, include_dashboard=False, _temp_dir=tmp, log_to_driver=True, _node_ip_address=LOOPBACK,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def shapes_cache(tmp_path_factory):
    """A per-session cache of the generated dataset, shared by every worker process."""
    d = tmp_path_factory.mktemp("shapes-cache")
    old = os.environ.get("MIXSIZE_RAY_DATA_DIR")
    os.environ["MIXSIZE_RAY_DATA_DIR"] = str(d)
    yield d
    if old is None:
        os.environ.pop("MIXSIZE_RAY_DATA_DIR", None)
    else:
        os.environ["MIXSIZE_RAY_DATA_DIR"] = old
