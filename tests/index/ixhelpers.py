"""Vectors with structure (clusters), so approximate indexes find the true neighbours in unit tests."""
from __future__ import annotations

import numpy as np

DIM = 16
SPECS = ["Flat", "HNSW16", "IVF8,Flat", "IVF8,PQ4"]
METRICS = ["cosine", "ip", "l2"]


def clustered_vectors(n: int, dim: int = DIM, clusters: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)) * 3
    return (centres[rng.integers(0, clusters, n)] + rng.standard_normal((n, dim)) * 0.5).astype(np.float32)


def ids_for(n: int, prefix: str = "doc") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def subprocess_env() -> dict:
    """The environment for a child process: this checkout's embedkit first, one thread per library."""
    import os
    from pathlib import Path

    import embedkit

    root = str(Path(embedkit.__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
