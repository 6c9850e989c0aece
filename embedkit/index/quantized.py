"""Compact indexes: binary FAISS indexes over sign bits, and rescoring from vectors kept on disk.

Specs (``index build --spec``, ``eval retrieval --index``, ``FaissIndex(dim, spec)``):

- ``SQ8``: int8 scalar quantisation, FAISS's own ``IndexScalarQuantizer`` (a plain ``index_factory`` spec);
- ``BFlat``, ``BHNSW32``, ``BIVF256``: FAISS's binary indexes (``index_binary_factory``) over the sign bit of
  each dimension (sentence-transformers' ``quantize_embeddings(..., "ubinary")``), searched by Hamming
  distance; scores are reported as ``(dim - 2 * hamming) / dim``, the cosine of the +-1 vectors;
- any spec followed by ``+rescore`` (float32 rows) or ``+rescore-int8`` (int8 rows, per-dimension ranges
  calibrated on the first vectors added, as sentence-transformers' ``quantize_embeddings`` does): the
  compact index fetches ``rescore_factor x k`` candidates (search parameter ``rescore_factor``, default
  4), and these are rescored against the float query with the rows of a ``.npy`` file that a loaded index
  memory-maps, so only the compact codes have to stay in memory.

Why hand-written glue: FAISS's binary indexes take packed ``uint8`` codes and return Hamming distances,
while :class:`~embedkit.index.faiss_index.FaissIndex` drives float indexes, so :class:`BinaryIndex` adapts
one to the other (packing, score conversion) and nothing more. FAISS's ``IndexRefine`` does rescoring,
but only over a float base index and with its refinement vectors inside the index file (read into memory),
not for binary indexes, and not from a memory-mapped file; sentence-transformers' ``semantic_search_faiss``
rescores in memory only, without ids, persistence or removal. :class:`Rescored` is that missing piece.
"""
from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from embedkit.errors import IndexError_

RESCORE_DTYPES = {"rescore": "float32", "rescore-float32": "float32", "rescore-int8": "int8"}
DEFAULT_RESCORE_FACTOR = 4
_BINARY_PREFIXES = ("BFlat", "BHNSW", "BIVF")


@dataclass(frozen=True)
class ParsedSpec:
    base: str              # the FAISS (or FAISS binary) factory string
    binary: bool           # base is a FAISS binary index over sign bits
    rescore: str | None    # None, "float32" or "int8": the rows kept on disk for rescoring


def parse_spec(spec: str) -> ParsedSpec:
    """Split ``BHNSW32+rescore-int8`` into its FAISS part and its rescoring part."""
    if not isinstance(spec, str) or not spec.strip():
        raise IndexError_(f"index spec must be a non-empty string, got {spec!r}")
    base, _, suffix = spec.partition("+")
    if suffix and suffix not in RESCORE_DTYPES:
        raise IndexError_(f"spec {spec!r}: unknown suffix '+{suffix}'; use +rescore (float32 rows) or +rescore-int8")
    return ParsedSpec(base, base.startswith(_BINARY_PREFIXES), RESCORE_DTYPES[suffix] if suffix else None)


def pack_signs(x: np.ndarray) -> np.ndarray:
    """One bit per dimension, set where the value is positive (sentence-transformers' ``ubinary``)."""
    from sentence_transformers.util.quantization import quantize_embeddings

    return np.ascontiguousarray(quantize_embeddings(np.asarray(x, dtype=np.float32), precision="ubinary"))


def make_binary(dim: int, spec: str, metric: str) -> "BinaryIndex":
    if metric == "l2":
        raise IndexError_(f"spec {spec!r}: binary indexes compare sign bits (Hamming), which ranks like cosine "
                          "or inner product; use --metric cosine or ip")
    if dim % 8:
        raise IndexError_(f"spec {spec!r}: binary indexes need a dimension that is a multiple of 8, got {dim} "
                          "(pick --dim accordingly)")
    try:
        base = faiss.index_binary_factory(int(dim), spec)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise IndexError_(f"invalid FAISS binary index spec {spec!r} for dimension {dim}: {reason}") from None
    # IVF keeps our labels natively (as for float IVF: IDMap2 over IVF breaks on remove_ids)
    return BinaryIndex(base if isinstance(base, faiss.IndexBinaryIVF) else faiss.IndexBinaryIDMap2(base), dim)


class BinaryIndex:
    """A FAISS binary index behind the part of the float ``faiss.Index`` interface FaissIndex uses."""

    metric_type = faiss.METRIC_INNER_PRODUCT

    def __init__(self, index: faiss.IndexBinary, dim: int):
        self.index, self.d = index, int(dim)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def is_trained(self) -> bool:
        return bool(self.index.is_trained)

    @property
    def inner(self) -> faiss.IndexBinary:
        """The binary index under the id map (BinaryFlat, BinaryHNSW or BinaryIVF)."""
        index = faiss.downcast_IndexBinary(self.index)
        return faiss.downcast_IndexBinary(index.index) if isinstance(index, faiss.IndexBinaryIDMap2) else index

    @property
    def code_size(self) -> int:
        return int(self.index.code_size)

    def train(self, x: np.ndarray) -> None:
        self.index.train(pack_signs(x))

    def add_with_ids(self, x: np.ndarray, labels: np.ndarray) -> None:
        self.index.add_with_ids(pack_signs(x), labels)

    def remove_ids(self, selector) -> int:
        return self.index.remove_ids(selector)

    def search(self, x: np.ndarray, k: int, params=None) -> tuple[np.ndarray, np.ndarray]:
        hamming, labels = self.index.search(pack_signs(x), k, params=params)
        return (self.d - 2 * hamming.astype(np.float32)) / self.d, labels

    def reconstruct_batch(self, labels: np.ndarray) -> np.ndarray:
        """The +-1 vectors (scaled to unit length) that the stored bits stand for."""
        inner = self.inner
        if isinstance(inner, faiss.IndexBinaryIVF):
            inner.direct_map.set_type(faiss.DirectMap.Hashtable, inner.invlists, inner.ntotal)
        try:
            codes = np.stack([self.index.reconstruct(int(label)) for label in labels])
        finally:
            if isinstance(inner, faiss.IndexBinaryIVF):
                inner.direct_map.set_type(faiss.DirectMap.NoMap, inner.invlists, inner.ntotal)
        bits = np.unpackbits(codes, axis=1)[:, :self.d].astype(np.float32)
        return (2 * bits - 1) / np.sqrt(self.d, dtype=np.float32)

    def write(self, writer) -> None:
        faiss.write_index_binary(self.index, writer)


class RescoreRows:
    """The float32 or int8 rows rescoring reads, row ``i`` for label ``i`` (rows of removed labels stay).

    Loaded from a folder, ``rows`` is a read-only memory map of the generation's ``.npy`` file; adding to
    it copies the rows into memory first (a build or an add rewrites the file anyway)."""

    def __init__(self, dtype: str, dim: int, rows: np.ndarray | None = None, ranges: np.ndarray | None = None):
        self.dtype, self.dim = dtype, int(dim)
        self._rows = rows if rows is not None else np.zeros((0, self.dim), dtype=dtype)
        self._size = len(self._rows)
        self.ranges = None if ranges is None else np.asarray(ranges, dtype=np.float32)

    @property
    def rows(self) -> np.ndarray:
        """Row ``i`` for label ``i`` (a read-only memory map when loaded and not added to since)."""
        return self._rows[:self._size]

    @property
    def calibrated(self) -> bool:
        return self.dtype == "float32" or self.ranges is not None

    @property
    def row_bytes(self) -> int:
        return self.dim * np.dtype(self.dtype).itemsize

    def calibrate(self, x: np.ndarray) -> None:
        """Per-dimension int8 ranges from a sample (min and max, as sentence-transformers calibrates)."""
        if self.dtype == "int8" and self.ranges is None:
            self.ranges = np.vstack((x.min(axis=0), x.max(axis=0))).astype(np.float32)

    def put(self, labels: np.ndarray, x: np.ndarray) -> None:
        from sentence_transformers.util.quantization import quantize_embeddings

        self.calibrate(x)
        codes = x if self.dtype == "float32" else quantize_embeddings(x, precision="int8", ranges=self.ranges)
        size = max(self._size, int(labels.max()) + 1)
        if size > len(self._rows) or not self._rows.flags.writeable:  # grow by half again: amortised copies
            grown = np.zeros((max(size, len(self._rows) * 3 // 2), self.dim), dtype=self.dtype)
            grown[:self._size] = self._rows[:self._size]
            self._rows = grown
        self._rows[labels] = codes
        self._size = size

    def decoded(self, labels: np.ndarray) -> np.ndarray:
        """Rows as float32 (int8 dequantised to the bucket start, following sentence-transformers'
        ``quantize_embeddings``: value = low + (code + 128) * step)."""
        rows = np.asarray(self.rows[labels], dtype=np.float32)
        if self.dtype == "int8":
            low, high = self.ranges
            rows = (rows + 128) * np.where(high > low, (high - low) / 255, 1).astype(np.float32) + low
        return rows

    def scores(self, x: np.ndarray, labels: np.ndarray, metric_type: int) -> np.ndarray:
        """Exact scores (FAISS convention: inner products, or squared L2 distances) of each query's candidates;
        ``labels`` is (queries, candidates), -1 where there is none."""
        rows = self.decoded(np.where(labels >= 0, labels, 0).ravel()).reshape(labels.shape + (self.dim,))
        dots = np.einsum("qd,qcd->qc", x, rows)
        if metric_type == faiss.METRIC_L2:
            return (x * x).sum(axis=1, keepdims=True) - 2 * dots + (rows * rows).sum(axis=2)
        return dots


class Rescored:
    """A compact index whose candidates (``rescore_factor x k``) are rescored with :class:`RescoreRows`."""

    def __init__(self, base, rows: RescoreRows, factor: int = DEFAULT_RESCORE_FACTOR):
        self.base, self.rows, self.factor = base, rows, int(factor)
        self.d, self.metric_type = base.d, base.metric_type

    @property
    def ntotal(self) -> int:
        return int(self.base.ntotal)

    @property
    def is_trained(self) -> bool:
        return bool(self.base.is_trained) and self.rows.calibrated

    def train(self, x: np.ndarray) -> None:
        if not self.base.is_trained:
            self.base.train(x)
        self.rows.calibrate(x)

    def add_with_ids(self, x: np.ndarray, labels: np.ndarray) -> None:
        self.rows.put(labels, x)
        self.base.add_with_ids(x, labels)

    def remove_ids(self, selector) -> int:
        return self.base.remove_ids(selector)  # rows of removed labels stay: labels are never reused

    def search(self, x: np.ndarray, k: int, params=None) -> tuple[np.ndarray, np.ndarray]:
        fetch = max(k, min(self.factor * k, self.ntotal))
        _, candidates = self.base.search(x, fetch, params=params)
        scores = self.rows.scores(x, candidates, self.metric_type)
        l2 = self.metric_type == faiss.METRIC_L2
        scores = np.where(candidates >= 0, scores, np.inf if l2 else -np.inf)
        order = np.argsort(scores if l2 else -scores, axis=1, kind="stable")[:, :k]
        labels = np.take_along_axis(candidates, order, axis=1)
        return np.take_along_axis(scores, order, axis=1).astype(np.float32), labels

    def reconstruct_batch(self, labels: np.ndarray) -> np.ndarray:
        """The rows kept for rescoring (exact for float32, dequantised for int8)."""
        return self.rows.decoded(np.asarray(labels, dtype=np.int64))


def check_rows(rows: np.ndarray, dtype: str, dim: int, labels: int, shown) -> None:
    """Refuse a rescore file whose shape or type disagrees with the manifest (truncated, or another index's)."""
    if rows.dtype != np.dtype(dtype) or rows.ndim != 2 or rows.shape[1] != dim or rows.shape[0] < labels:
        raise IndexError_(f"{shown}: rescore rows are {rows.dtype} {tuple(rows.shape)}, the index needs {dtype} "
                          f"({labels}, {dim}); the file is truncated or not this index's")
