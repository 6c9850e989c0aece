"""Vectors with structure (clusters), so approximate indexes find the true neighbours in unit tests."""
from __future__ import annotations

import json

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


# ------------------------------------------------------------------ CLI tests

DOCS = [("c1", "Cats", "Cats purr and chase mice around the house."),
        ("c2", "Dogs", "Dogs bark at strangers and love running in parks."),
        ("c3", "Fish", "Fish swim in rivers, lakes and the open sea."),
        ("c4", "Birds", "Birds sing at dawn and migrate south in winter."),
        ("c5", "Bees", "Bees make honey and pollinate flowers in spring.")]


def write_corpus(path, docs):
    path.write_text("".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in docs))
    return path


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("embedkit: error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err  # (model loading may draw a progress bar)
    return errors[0]
