"""Choosing ``nprobe`` / ``efSearch``: recall@k against exact search, cheapest setting that meets a target."""
from __future__ import annotations

import time
from typing import Callable

import faiss
import numpy as np

from embedkit.index.hits import TunePoint, TuneResult
from embedkit.index.specs import SearchKnob


def exact_neighbours(vectors: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int, metric: int) -> np.ndarray:
    """Labels of the exact top-k of each query among ``vectors`` (``faiss.knn`` blocks the work)."""
    if metric == faiss.METRIC_INNER_PRODUCT:
        _, positions = faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    else:
        _, positions = faiss.knn(queries, vectors, k)
    return np.where(positions >= 0, labels[np.maximum(positions, 0)], -1)


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of |found ∩ exact| / |exact| (ignoring -1 padding)."""
    total = 0.0
    for f, e in zip(found, exact):
        e = e[e >= 0]
        if len(e):
            total += len(np.intersect1d(f[f >= 0], e)) / len(e)
    return total / len(exact)


def sweep(knob: SearchKnob, set_value: Callable[[int], None], search: Callable[[np.ndarray, int], np.ndarray],
          queries: np.ndarray, exact: np.ndarray, k: int, target: float, spec: str) -> TuneResult:
    """Try ``knob``'s values from cheapest up; stop at the first that reaches ``target``.

    Cost grows with ``nprobe`` and ``efSearch``, so the first value that reaches the target is the cheapest
    one. If none does, keep the value with the best recall and say so.
    """
    curve: list[TunePoint] = []
    for value in knob.candidates:
        set_value(value)
        start = time.perf_counter()
        found = search(queries, k)
        elapsed = max(time.perf_counter() - start, 1e-9)
        point = TunePoint(value, round(recall_at_k(found, exact), 4), round(len(queries) / elapsed, 1))
        curve.append(point)
        if point.recall >= target:
            return TuneResult(knob.name, value, point.recall, target, True, k, len(queries),
                              f"{spec}: {knob.name}={value} reaches recall@{k} {point.recall:.4f} "
                              f"(target {target}) against exact search", curve)
        if point.recall >= 1.0:
            break
    best = max(curve, key=lambda p: (p.recall, -p.value))
    set_value(best.value)
    return TuneResult(knob.name, best.value, best.recall, target, False, k, len(queries),
                      f"{spec}: target recall@{k} {target} cannot be reached; the best is {best.recall:.4f} at "
                      f"{knob.name}={best.value}, kept" + (" (PQ compression caps recall)" if "PQ" in spec else ""),
                      curve)
