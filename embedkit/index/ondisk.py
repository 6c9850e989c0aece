"""IVF indexes larger than memory: train on a sample, fill copies of the trained index shard by shard,
merge the shards' inverted lists into one file on disk (``faiss.contrib.ondisk.merge_ondisk``).

Each step is a plain function over bytes and files, so the shards can be filled anywhere (in Ray
tasks: :mod:`embedkit.index.from_embeddings`) and merged where the index folder is written. Saving the
merged index moves its lists file into the folder as ``lists-<gen>.ivfdata``, a file of the generation
like the others (size and SHA-256 in the manifest); a load maps it (FAISS's ``OnDiskInvertedLists``), so
searching pages in only the lists it probes.
"""
from __future__ import annotations

import contextlib
import os
import sys
import uuid
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import faiss
import numpy as np

from embedkit.errors import IndexError_
from embedkit.index import specs



def ondisk_lists(index: faiss.Index) -> "faiss.OnDiskInvertedLists | None":
    """The index's ``OnDiskInvertedLists`` (an IVF merged on disk), or None."""
    if not isinstance(index, faiss.Index):  # binary and +rescore specs (embedkit.index.quantized) never are
        return None
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        return None
    lists = faiss.downcast_InvertedLists(ivf.invlists)
    return lists if isinstance(lists, faiss.OnDiskInvertedLists) else None


def check_ivf_spec(dim: int, spec: str, metric: str) -> faiss.Index:
    """An empty index for ``spec``, refused unless it is an IVF spec (the only kind with inverted lists)."""
    index = specs.make_index(dim, spec, metric)
    # binary and +rescore specs are embedkit adapters, not FAISS indexes with float inverted lists
    if not isinstance(index, faiss.Index) or faiss.try_extract_index_ivf(index) is None:
        raise IndexError_(f"spec {spec!r}: an on-disk build needs an IVF spec (e.g. IVF4096,PQ32 or IVF1024,SQ8)")
    return index


def sample_rows(total: int, dim: int, spec: str, metric: str) -> np.ndarray:
    """The rows to train on: evenly spaced over the corpus (as :func:`embedkit.index.build_from_vectors`
    takes them), so a corpus sorted by topic still trains every region."""
    need = specs.training_size(check_ivf_spec(dim, spec, metric))
    return np.linspace(0, total - 1, min(need, total)).astype(np.int64)


def _prepared(vectors: np.ndarray, metric: str) -> np.ndarray:
    x = np.array(vectors, dtype=np.float32, order="C", copy=True)
    if metric == "cosine":
        faiss.normalize_L2(x)
    return x


def train(dim: int, spec: str, metric: str, sample: np.ndarray) -> np.ndarray:
    """The trained, empty index, serialised (bytes as a uint8 array, cheap to ship to other processes)."""
    index = check_ivf_spec(dim, spec, metric)
    need = specs.min_training_size(index)
    if len(sample) < need:
        raise IndexError_(f"spec {spec} needs at least {need} training vectors, the corpus has {len(sample)}")
    index.train(_prepared(sample, metric))
    return faiss.serialize_index(index)


def fill_shard(trained: np.ndarray, blocks: Iterable[tuple[int, np.ndarray]], out: str | os.PathLike,
               metric: str) -> int:
    """Add ``(first_label, vectors)`` blocks to a copy of the trained index and write it to ``out``
    (atomically); labels are row numbers of the whole corpus. Returns the vectors added."""
    index = faiss.deserialize_index(trained)
    for first, vectors in blocks:
        index.add_with_ids(_prepared(vectors, metric), np.arange(first, first + len(vectors), dtype=np.int64))
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        faiss.write_index(index, str(tmp))
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return int(index.ntotal)


def merge(trained: np.ndarray, shards: Sequence[str | os.PathLike], lists_path: Path) -> faiss.Index:
    """The trained index with every shard's inverted lists merged into the file ``lists_path``.

    The shards are read memory-mapped and the lists file is written through a memory map, so memory
    stays small whatever the corpus size. The file is written under a temporary name and renamed.
    """
    from faiss.contrib.ondisk import merge_ondisk

    index = faiss.deserialize_index(trained)
    tmp = lists_path.with_name(f".{lists_path.name}.tmp")
    try:
        with _c_stdout_to_stderr():
            merge_ondisk(index, [str(s) for s in shards], str(tmp))
        os.replace(tmp, lists_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    ondisk_lists(index).filename = str(lists_path.resolve())  # the open mapping survives the rename
    return index


@contextlib.contextmanager
def _c_stdout_to_stderr() -> Iterator[None]:
    """FAISS's C++ prints "resizing FILE to N bytes" on stdout while it grows a lists file; commands whose
    stdout is JSON for scripts must not carry it, so it goes to stderr with the other progress output."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
