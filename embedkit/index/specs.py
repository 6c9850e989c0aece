"""FAISS ``index_factory`` specs: validation, metrics, id mapping and the knob each spec searches with.

Binary specs (``BFlat``, ``BHNSW32``, ``BIVF256``) and ``+rescore`` suffixes are described in
:mod:`embedkit.index.quantized`; the functions here accept its adapters wherever they take an index.

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
from embedkit.index import quantized

METRICS = ("cosine", "ip", "l2")
DEFAULT_EF_SEARCH = 64
SCALAR_SAMPLE = 65536  # vectors whose per-dimension ranges train a scalar quantiser (see training_size)
_FAISS_METRIC = {"cosine": faiss.METRIC_INNER_PRODUCT, "ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise IndexError_(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    return metric


def faiss_metric(metric: str) -> int:
    return _FAISS_METRIC[check_metric(metric)]


def make_index(dim: int, spec: str, metric: str):
    """An empty index for ``spec`` that accepts int64 labels through ``add_with_ids``: a FAISS index, or for
    binary and ``+rescore`` specs the adapters of :mod:`embedkit.index.quantized`."""
    if not isinstance(dim, (int, np.integer)) or dim <= 0:
        raise IndexError_(f"dimension must be a positive integer, got {dim!r}")
    if "IDMap" in spec:
        raise IndexError_(f"spec {spec!r}: leave out IDMap, embedkit maps ids itself")
    parsed = quantized.parse_spec(spec)
    if parsed.binary:
        base = quantized.make_binary(int(dim), parsed.base, metric)
        if _is_hnsw(base):
            unwrap(base).hnsw.efSearch = DEFAULT_EF_SEARCH  # as for float HNSW (see _make_float)
    else:
        base = _make_float(int(dim), parsed.base, metric)
    if parsed.rescore is None:
        return base
    return quantized.Rescored(base, quantized.RescoreRows(parsed.rescore, int(dim)))


def _make_float(dim: int, spec: str, metric: str) -> faiss.Index:
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


def unwrap(index):
    """The innermost index under IDMap / pre-transform wrappers and embedkit's adapters."""
    if isinstance(index, quantized.Rescored):
        index = index.base
    if isinstance(index, quantized.BinaryIndex):
        return index.inner
    while True:
        index = faiss.downcast_index(index)
        if isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2, faiss.IndexPreTransform)):
            index = index.index
        else:
            return index


def _ivf(index):
    """The IVF index inside ``index`` (float or binary), or None."""
    inner = unwrap(index)
    if isinstance(inner, faiss.IndexBinaryIVF):
        return inner
    if isinstance(index, quantized.Rescored):
        index = index.base
    return None if isinstance(index, quantized.BinaryIndex) else faiss.try_extract_index_ivf(index)


def _is_hnsw(index) -> bool:
    return isinstance(unwrap(index), (faiss.IndexHNSW, faiss.IndexBinaryHNSW))


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
    ivf = _ivf(index)
    if ivf is not None:
        return SearchKnob("nprobe", tuple(v for v in (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384,
                                                       512, 768, 1024, 2048, 4096) if v <= ivf.nlist))
    if _is_hnsw(index):
        return SearchKnob("efSearch", (10, 16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 384, 512, 768, 1024))
    return None


def get_search_param(index: faiss.Index, name: str) -> int:
    if name == "nprobe":
        return int(_ivf(index).nprobe)
    return int(unwrap(index).hnsw.efSearch)


def set_search_param(index: faiss.Index, name: str, value: int) -> None:
    if name == "nprobe":
        _ivf(index).nprobe = int(value)
    elif name == "efSearch":
        unwrap(index).hnsw.efSearch = int(value)
    else:
        raise IndexError_(f"unknown search parameter {name!r}")


def training_size(index: faiss.Index) -> int:
    """How many vectors to collect before training: FAISS's k-means wants about 39 points per centroid.

    IVF needs ``39 * nlist`` for its coarse quantizer and PQ ``39 * 2**nbits`` per sub-quantizer; we take
    a margin above both (64 per centroid), capped at 256 * nlist as FAISS subsamples beyond that anyway.
    Scalar quantisers (``SQ8``, and the int8 rows of ``+rescore-int8``) learn each dimension's min and max:
    a small sample clips the rest of the corpus (1,000 vectors cost SQ8 2 points of recall@10 against raw
    FAISS trained on 100,000), and a pass over more is cheap, so they take up to ``SCALAR_SAMPLE``.
    """
    if index.is_trained:
        return 0
    need = 0
    if isinstance(index, quantized.Rescored) and not index.rows.calibrated:
        need = SCALAR_SAMPLE
    if hasattr(unwrap(index), "sq"):
        need = SCALAR_SAMPLE
    ivf = _ivf(index)
    if ivf is not None:
        need = max(need, 64 * ivf.nlist)
    inner = unwrap(index)
    pq = getattr(inner, "pq", None)
    if pq is not None:
        need = max(need, 64 * (1 << pq.nbits))
    return max(need, 1000)


def min_training_size(index: faiss.Index) -> int:
    """The fewest vectors FAISS accepts for training (one per centroid of the largest k-means)."""
    need = 2 if isinstance(index, quantized.Rescored) and not index.rows.calibrated else 1  # int8 ranges
    ivf = _ivf(index)
    if ivf is not None:
        need = max(need, ivf.nlist)
    pq = getattr(unwrap(index), "pq", None)
    if pq is not None:
        need = max(need, 1 << pq.nbits)
    return need
