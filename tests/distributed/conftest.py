"""A real two-node Ray cluster on this machine (a head and a second node, 1 CPU each), torn down after.

The nodes are separate raylet processes with their own object stores (300 MiB each, so the cluster fits
beside other work on a shared machine); tasks and actors are spread over both, as on two machines.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'embedkit[ray]' to run tests/distributed")

OBJECT_STORE = 300 * 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def ray_cluster():
    """The address (HOST:PORT) of a running two-node cluster; shut down at the end of the session."""
    from ray.cluster_utils import Cluster

    # the nodes' workers import this checkout's embedkit, whatever the working directory
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": OBJECT_STORE,
                                                            "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
        cluster.wait_for_nodes()
        yield cluster.address
    finally:
        cluster.shutdown()


def embedkit_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "embedkit.cli.main", *args]
