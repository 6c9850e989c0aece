"""FAISS ``index_factory`` specs: validation, metrics, id mapping and the knob each spec searches with.

Which wrapper gives string-id support depends on the index type, because FAISS's own wrappers do not
compose everywhere: ``IndexIDMap2`` over an IVF index would corrupt its id map on ``remove_ids`` (IVF keeps
stale internal ids), so IVF indexes store our int64 labels natively, and every other type is wrapped in
``IndexIDMap2`` (which also gives ``reconstruct`` by label).
"""
from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from embedkit.errors import IndexError_

METRICS = ("cosine", "ip", "l2")
DEFAULT_EF_SEARCH = 64
_FAISS_METRIC = {"cosine": faiss.METRIC_INNER_PRODUCT, "ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise IndexError_(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    return metric


def faiss_metric(metric: str) -> int:
    return _FAISS_METRIC[check_metric(metric)]


def make_index(dim: int, spec: str, metric: str) -> faiss.Index:
    """An empty FAISS index for ``spec`` that accepts int64 labels through ``add_with_ids``."""
    if not isinstance(dim, (int, np.integer)) or dim <= 0:
        raise IndexError_(f"dimension must be a positive integer, got {dim!r}")
    if "IDMap" in spec:
        raise IndexError_(f"spec {spec!r}: leave out IDMap, embedkit maps ids itself")
    try:
        base = faiss.index_factory(int(dim), spec, faiss_metric(metric))
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise IndexError_(f"invalid FAISS index spec {spec!r} for dimension {dim}: {reason}") from None
    inner = unwrap(base)
    if hasattr(inner, "do_polysemous_training"):
        # index_factory turns on polysemous training for PQ (unless the spec ends in "np"); it only serves
        # Hamming-threshold search, which embedkit never enables, and costs minutes on a busy machine.
        inner.do_polysemous_training = False
    if faiss.try_extract_index_ivf(base) is not None:
        return base
    if isinstance(inner, faiss.IndexHNSW):
        # FAISS's default efSearch of 16 loses recall@10 on real sentence embeddings; 64 is the smallest with
        # recall@10 >= 0.99 against exact search and nDCG@10 within 0.1 of it on SciFact dev
        # (benchmarks/dev_choices.py hnsw, results/choices/). ``tune`` can still lower it.
        inner.hnsw.efSearch = DEFAULT_EF_SEARCH
    return faiss.IndexIDMap2(base)


def unwrap(index: faiss.Index) -> faiss.Index:
    """The innermost index under IDMap / pre-transform wrappers."""
    while True:
        index = faiss.downcast_index(index)
        if isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2, faiss.IndexPreTransform)):
            index = index.index
        else:
            return index


def can_remove_in_place(index: faiss.Index) -> bool:
    """True when FAISS can delete vectors from this index (HNSW, for one, cannot)."""
    try:
        index.remove_ids(faiss.IDSelectorBatch(np.zeros(0, dtype=np.int64)))
        return True
    except RuntimeError:
        return False


@dataclass(frozen=True)
class SearchKnob:
    """The parameter that trades speed for recall on an index, and the values ``tune`` tries (cheapest first)."""

    name: str
    candidates: tuple[int, ...]


def search_knob(index: faiss.Index) -> SearchKnob | None:
    """``nprobe`` for IVF, ``efSearch`` for HNSW, None for exact indexes."""
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        return SearchKnob("nprobe", tuple(v for v in (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384,
                                                       512, 768, 1024, 2048, 4096) if v <= ivf.nlist))
    if isinstance(unwrap(index), faiss.IndexHNSW):
        return SearchKnob("efSearch", (10, 16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 384, 512, 768, 1024))
    return None


def get_search_param(index: faiss.Index, name: str) -> int:
    if name == "nprobe":
        return int(faiss.extract_index_ivf(index).nprobe)
    return int(unwrap(index).hnsw.efSearch)


def set_search_param(index: faiss.Index, name: str, value: int) -> None:
    if name == "nprobe":
        faiss.extract_index_ivf(index).nprobe = int(value)
    elif name == "efSearch":
        unwrap(index).hnsw.efSearch = int(value)
    else:
        raise IndexError_(f"unknown search parameter {name!r}")


def training_size(index: faiss.Index) -> int:
    """How many vectors to collect before training: FAISS's k-means wants about 39 points per centroid.

    IVF needs ``39 * nlist`` for its coarse quantizer and PQ ``39 * 2**nbits`` per sub-quantizer; we take
    a margin above both (64 per centroid), capped at 256 * nlist as FAISS subsamples beyond that anyway.
    """
    if index.is_trained:
        return 0
    need = 0
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        need = max(need, 64 * ivf.nlist)
    inner = unwrap(index)
    pq = getattr(inner, "pq", None)
    if pq is not None:
        need = max(need, 64 * (1 << pq.nbits))
    return max(need, 1000)


def min_training_size(index: faiss.Index) -> int:
    """The fewest vectors FAISS accepts for training (one per centroid of the largest k-means)."""
    need = 1
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        need = max(need, ivf.nlist)
    pq = getattr(unwrap(index), "pq", None)
    if pq is not None:
        need = max(need, 1 << pq.nbits)
    return need
