"""A real two-node Ray cluster on this machine (a head and a second node, 1 CPU each), torn down after.

The nodes are separate raylet processes with their own object stores (300 MiB each, so the cluster fits
beside other work on a shared machine); tasks and actors are spread over both, as on two machines.
"""
from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def tiny_embeddings(ray_cluster, tiny_model_dir, tmp_path_factory) -> Path:
    """An embeddings folder made on the cluster: 3,000 sentences, the tiny model, 12 parts."""
    import random

    from embedkit.distributed import encode_on_ray

    words = ("protein cell gene climate river market court music planet engine theory city language child "
             "energy water disease network history species").split()
    rng = random.Random(0)
    root = tmp_path_factory.mktemp("tiny_embeddings")
    source = root / "corpus.txt"
    source.write_text("".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 20))) + "\n"
                              for _ in range(3000)), encoding="utf-8")
    encode_on_ray(source, root / "emb", model=str(tiny_model_dir), address=ray_cluster, show_progress=False)
    return root / "emb"
