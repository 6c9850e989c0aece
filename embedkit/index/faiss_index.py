"""``FaissIndex``: a FAISS index with string ids, stored texts, safe saving and recall tuning.

Metrics: ``cosine`` (vectors are L2-normalised on add and search, then inner product), ``ip`` and ``l2``.
Specs are FAISS ``index_factory`` strings (``Flat``, ``HNSW32``, ``IVF1024,Flat``, ``IVF256,PQ16``, ``SQ8``, ...),
FAISS binary specs over sign bits (``BFlat``, ``BHNSW32``, ``BIVF256``), and either kind with ``+rescore`` or
``+rescore-int8`` (see :mod:`embedkit.index.quantized`).

Training: specs that need it (IVF, PQ) train on the first batch passed to ``add`` unless ``train`` was
called first; :func:`embedkit.index.build.build_index` collects a large enough sample before its first add.

Removal: where FAISS deletes in place (Flat, IVF, PQ) ``remove`` deletes. HNSW cannot delete, so removed
vectors are marked deleted and filtered out of every search by an ``IDSelector``; ``compact()`` rebuilds
the graph without them, and ``save`` compacts by itself once a fifth of the vectors are marked deleted.

Search parameters: ``nprobe`` (IVF) and ``efSearch`` (HNSW) are set by hand (``set_search_params``) or by
``tune``, and saved. New HNSW indexes start at efSearch 64 (FAISS's 16 loses ~3% recall@10 on real
embeddings), and a search for more than efSearch hits widens the beam to k, as hnswlib does.

Folder layout (see :mod:`embedkit.index.storage` for why saving is crash-safe and reading consistent)::

    meta.json                 manifest: versions, spec, metric, dim, count, model, tuning, generation, the
                              BM25 section (see :mod:`embedkit.index.bm25`), size and SHA-256 of every file
    index-<gen>.faiss         the FAISS index (faiss.write_index)
    docs-<gen>.jsonl          row i = the document with label i: {"id", "text", "title", "parent"} or null
    deleted-<gen>.npy         labels marked deleted (HNSW only), int64, loaded with allow_pickle=False
    rescore-<gen>.npy         ``+rescore`` specs: float32 or int8 rows by label, memory-mapped when loaded
                              (see :mod:`embedkit.index.quantized`; int8 ranges are in the manifest)
    lists-<gen>.ivfdata       IVF built on disk (:mod:`embedkit.index.ondisk`): the inverted lists, which a
                              load maps from disk; kept across saves that leave the vectors as they are
    writer.lock               the writer lock (:mod:`embedkit.index.lock`); holds the holder's pid and command

Saving takes the folder's writer lock; to change an index that other processes may change too, use
:class:`embedkit.index.folder.IndexFolder` (``update`` holds the lock from load to save).
"""
from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Sequence

import faiss
import numpy as np

from embedkit.errors import IndexError_
from embedkit.index import quantized, specs, storage, tuning
from embedkit.index.lock import DEFAULT_WAIT
from embedkit.index.storage import MANIFEST
from embedkit.index.docstore import DocStore
from embedkit.index.ondisk import ondisk_lists
from embedkit.index.hits import Hit, SearchResults, TuneResult
from embedkit.version import embedkit_version

FORMAT = "embedkit-faiss-index"
FORMAT_VERSION = 2  # 2: one manifest for the FAISS and BM25 sides, a generation tag; 1 is read too
COMPACT_FRACTION = 0.2
LISTS_READ_ONLY = ("this IVF index keeps its inverted lists on disk (built with --on-disk), where they are "
                   "read-only; rebuild it from the embeddings to change it")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _versions() -> dict:
    return {"embedkit": embedkit_version(), "faiss": faiss.__version__}


class FaissIndex:
    def __init__(self, dim: int, spec: str = "Flat", metric: str = "cosine", model_name: str | None = None,
                 model_fingerprint: str | None = None, model_source: str | None = None):
        self.metric = specs.check_metric(metric)
        self.spec = spec
        self.dim = int(dim) if isinstance(dim, (int, np.integer)) else dim
        self._index = specs.make_index(dim, spec, metric)
        self.model_name, self.model_fingerprint, self.model_source = model_name, model_fingerprint, model_source
        self.created = _now()
        self.tuned: dict | None = None
        self.build_params: dict = {}  # how documents were turned into vectors (chunking, prompt), reused by add
        self.path: Path | None = None
        self._generation: str | None = None  # the saved generation this object's state is (None: not saved)
        self._docs = DocStore()
        self._deleted: set[int] = set()
        self._read_only = False
        self._lists: str | None = None  # the lists file of the saved folder (IVF built on disk)
        self._lists_pending: Path | None = None  # a merged lists file not saved into a folder yet
        self._setup()

    def _setup(self) -> None:
        self._removes_in_place = specs.can_remove_in_place(self._index) if not self._read_only else True
        self._knob = specs.search_knob(self._index)
        self._columns: tuple | None = None
        self._deleted_filter: tuple | None = None
        self._faiss_bytes: int | None = None  # the saved FAISS file's size while the index is as saved

    @classmethod
    def from_faiss(cls, index: faiss.Index, ids: Sequence[str], texts: Sequence[str] | None = None,
                   titles: Sequence[str] | None = None, spec: str = "Flat", metric: str = "cosine",
                   model_name: str | None = None, model_fingerprint: str | None = None,
                   model_source: str | None = None) -> "FaissIndex":
        """Wrap a FAISS index filled elsewhere (e.g. shards merged on disk, :mod:`embedkit.index.ondisk`).

        Its labels must be ``0..n-1``, label ``i`` holding ``ids[i]``, and its vectors already normalised
        for ``cosine``; ``spec``/``metric`` say what it was made from."""
        self = cls(int(index.d), spec, metric, model_name, model_fingerprint, model_source)
        if index.ntotal != len(ids):
            raise IndexError_(f"{len(ids)} ids for a FAISS index of {index.ntotal} vectors")
        self._index = index
        lists = ondisk_lists(index)
        if lists is not None:  # merged on disk: the next save moves the lists file into the folder
            self._lists_pending = Path(lists.filename)
        self._docs.add(self._docs.check_new_ids(ids), texts, titles, None)
        self._setup()
        return self

    # ----------------------------------------------------------------- properties

    @property
    def normalized(self) -> bool:
        """Whether vectors are L2-normalised before FAISS sees them (cosine)."""
        return self.metric == "cosine"

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    @property
    def faiss_index(self) -> faiss.Index:
        """The underlying FAISS index (labels are int64 positions in the document store)."""
        return self._index

    def __len__(self) -> int:
        return len(self._docs)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self._docs

    def search_params(self) -> dict:
        params = {self._knob.name: specs.get_search_param(self._index, self._knob.name)} if self._knob else {}
        if isinstance(self._index, quantized.Rescored):
            params["rescore_factor"] = self._index.factor
        return params

    def set_search_params(self, **params: int) -> None:
        """Set ``nprobe`` (IVF), ``efSearch`` (HNSW) or ``rescore_factor`` (``+rescore`` specs) by hand."""
        for name, value in params.items():
            if name == "rescore_factor" and isinstance(self._index, quantized.Rescored):
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                    raise IndexError_(f"rescore_factor must be a positive integer, got {value!r}")
                self._index.factor = int(value)
                continue
            if self._knob is None or name != self._knob.name:
                raise IndexError_(f"{self.spec} has no search parameter {name!r}"
                                  + (f" (it has {self._knob.name})" if self._knob else ""))
            specs.set_search_param(self._index, name, value)

    # ----------------------------------------------------------------- vectors in

    def _prepare(self, vectors, what: str) -> np.ndarray:
        x = np.asarray(vectors)
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise IndexError_(f"{what}: expected vectors of dimension {self.dim}, got shape {tuple(x.shape)}")
        if self.normalized:  # a copy: the caller's array is not normalised in place
            x = np.array(x, dtype=np.float32, order="C", copy=True)
        else:
            x = np.ascontiguousarray(x, dtype=np.float32)
        if not np.isfinite(x).all():
            raise IndexError_(f"{what}: vectors contain NaN or infinite values")
        if self.normalized:
            faiss.normalize_L2(x)
        return x

    def _writable(self) -> None:
        if self._read_only:
            raise IndexError_("this index was loaded memory-mapped (read-only); load it with mmap=False to change it")
        if self._lists or self._lists_pending:
            raise IndexError_(LISTS_READ_ONLY)

    def _changed(self) -> None:
        self._faiss_bytes = None
        self._columns = None
        self._deleted_filter = None

    def train(self, vectors: np.ndarray) -> None:
        """Train the quantizers of IVF/PQ specs (a no-op for specs that need no training)."""
        self._writable()
        if self.is_trained:
            return
        x = self._prepare(vectors, "train")
        need = specs.min_training_size(self._index)
        if len(x) < need:
            raise IndexError_(f"spec {self.spec} needs at least {need} training vectors, got {len(x)}; "
                              "add more documents or choose a smaller spec (e.g. fewer IVF lists, or Flat/HNSW32)")
        self._index.train(x)

    def add(self, ids: Sequence[str], vectors: np.ndarray, texts: Sequence[str] | None = None,
            titles: Sequence[str] | None = None, parents: Sequence[str] | None = None) -> None:
        """Add vectors under new string ids; duplicate or already-present ids are refused, nothing is added."""
        self._writable()
        ids = self._docs.check_new_ids(ids)
        x = self._prepare(vectors, "add")
        if len(x) != len(ids):
            raise IndexError_(f"add: {len(ids)} ids for {len(x)} vectors")
        if not ids:
            return
        if not self.is_trained:
            self.train(x)
        labels = np.arange(self._docs.next_label, self._docs.next_label + len(ids), dtype=np.int64)
        self._index.add_with_ids(x, labels)
        self._docs.add(ids, texts, titles, parents)
        self._changed()

    def remove(self, ids: Sequence[str]) -> int:
        """Remove documents by id; unknown ids are refused (nothing is removed). Returns how many were removed."""
        self._writable()
        labels = np.unique(self._docs.labels_for(ids))
        if self._removes_in_place:
            self._index.remove_ids(faiss.IDSelectorBatch(labels))
        else:
            self._deleted.update(labels.tolist())
        self._docs.forget(labels)
        self._changed()
        return len(labels)

    def remove_documents(self, doc_ids: Sequence[str]) -> int:
        """Remove documents by their id, with all their chunks; unknown ids are refused (nothing is removed)."""
        wanted = {str(i) for i in doc_ids}
        d = self._docs
        targets = [i for i, p in zip(d.ids, d.parents) if i is not None and (i in wanted or p in wanted)]
        found = set(targets) | {d.parents[d.label_of[i]] for i in targets}
        unknown = [i for i in map(str, doc_ids) if i not in found]
        if unknown:
            raise IndexError_(f"ids not in the index: {', '.join(map(repr, unknown[:5]))}"
                              + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "") + "; nothing removed")
        return self.remove(targets)

    def ids(self) -> list[str]:
        """The ids held, in insertion order (chunk ids for chunked documents)."""
        return [i for i in self._docs.ids if i is not None]

    def get(self, ids: Sequence[str]) -> list[Hit | None]:
        """The stored rows of these ids (text, title, parent; score 0.0), None for an id not held."""
        d = self._docs
        labels = [d.label_of.get(str(i)) for i in ids]
        return [None if label is None else Hit(d.ids[label], 0.0, d.texts[label], d.titles[label], d.parents[label])
                for label in labels]

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, texts: Sequence[str] | None = None,
               titles: Sequence[str] | None = None, parents: Sequence[str] | None = None) -> None:
        """Replace the documents with these ids, with all their chunks (adding those that are new)."""
        self._writable()
        ids = [str(i) for i in ids]
        self._prepare(vectors, "upsert")  # refuse bad vectors before removing anything
        DocStore().check_new_ids(ids)  # duplicates within the batch
        present = self.documents_present(ids)
        if present:
            self.remove_documents(present)
        self.add(ids, vectors, texts, titles, parents)

    def documents_present(self, doc_ids: Sequence[str]) -> list[str]:
        """The ids among ``doc_ids`` held as a document or as the parent of chunks, in the given order."""
        wanted = {str(i) for i in doc_ids}
        found = {i for i in wanted if i in self._docs} | {p for p in self._docs.parents if p in wanted}
        return [i for i in map(str, doc_ids) if i in found]

    def compact(self) -> int:
        """Rebuild without vectors marked deleted (HNSW). Returns how many were dropped."""
        self._writable()
        dropped = len(self._deleted)
        if not dropped:
            return 0
        labels = self._docs.live_labels()
        vectors = self._reconstruct(labels)
        params = self.search_params()
        fresh = specs.make_index(self.dim, self.spec, self.metric)
        target = fresh
        if isinstance(fresh, quantized.Rescored):  # the rows stay as they are (labels are kept): rebuild the base
            fresh.rows, target = self._index.rows, fresh.base
        if not target.is_trained:
            target.train(vectors)
        if len(labels):
            target.add_with_ids(vectors, labels)
        self._index = fresh
        self._deleted.clear()
        self._setup()
        if params:
            self.set_search_params(**params)
        return dropped

    def _reconstruct(self, labels: np.ndarray) -> np.ndarray:
        """Stored vectors (decoded, so approximate for PQ/SQ codecs) of the given labels."""
        if not len(labels):
            return np.zeros((0, self.dim), dtype=np.float32)
        if isinstance(self._index, (quantized.Rescored, quantized.BinaryIndex)):
            return self._index.reconstruct_batch(labels)
        ivf = faiss.try_extract_index_ivf(self._index)
        if ivf is None:
            return self._index.reconstruct_batch(labels)
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
        try:
            return self._index.reconstruct_batch(labels)
        finally:
            ivf.set_direct_map_type(faiss.DirectMap.NoMap)

    # ----------------------------------------------------------------- search

    def _search_labels(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """FAISS search with the deleted-marks filter, and an HNSW beam of at least ``k``.

        FAISS's HNSW explores ``efSearch`` candidates whatever ``k`` is, so a search deeper than the beam
        returns a worse tail; hnswlib's rule (beam = max(efSearch, k)) is what users expect.
        """
        params = None
        if self._knob is not None and self._knob.name == "efSearch":
            ef = self._hnsw().efSearch
            depth = k * self._index.factor if isinstance(self._index, quantized.Rescored) else k  # what HNSW returns
            if self._deleted or depth > ef:
                if self._deleted_filter is None:
                    params = faiss.SearchParametersHNSW()
                    keep = batch = None
                    if self._deleted:
                        batch = faiss.IDSelectorBatch(np.fromiter(self._deleted, dtype=np.int64))
                        keep = faiss.IDSelectorNot(batch)
                        params.sel = keep
                    self._deleted_filter = (params, keep, batch)  # the selectors must outlive the parameters
                params = self._deleted_filter[0]
                params.efSearch = max(ef, depth)
        return self._index.search(x, k, params=params)

    def _hnsw(self):
        """The HNSW graph object of the current FAISS index, kept between searches: unwrapping and
        downcasting the index costs about 10 us of CPU, a tenth of a one-query HNSW search."""
        if getattr(self, "_hnsw_of", None) is not self._index:
            self._hnsw_graph, self._hnsw_of = specs.unwrap(self._index).hnsw, self._index
        return self._hnsw_graph

    def _doc_columns(self) -> tuple:
        """Object arrays of ids, texts, titles, parents (None for a column never set), plus a trailing None
        that the label -1 (FAISS's "no result") lands on."""
        if self._columns is None:
            d = self._docs
            self._columns = tuple(np.array(c + [None], dtype=object) if any(v is not None for v in c) else None
                                  for c in (d.ids, d.texts, d.titles, d.parents))
        return self._columns

    def search(self, query_vectors: np.ndarray, k: int = 10, by_parent: bool = False) -> Sequence[list[Hit]]:
        """Top-``k`` hits per query, best first; fewer when the index holds fewer than ``k``.

        Returns one ``list[Hit]`` per query (a :class:`SearchResults`, whose rows are built when read).

        ``by_parent``: at most one hit per source document (the best chunk), still ``k`` documents when
        enough exist; use it with chunked indexes to rank documents rather than chunks.
        """
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise IndexError_(f"k must be a positive integer, got {k!r}")
        x = self._prepare(query_vectors, "search")
        if not len(self._docs):
            return [[] for _ in range(len(x))]
        fetch = min(int(k), self._index.ntotal)
        while True:
            scores, labels = self._search_labels(x, fetch)
            hits = self._to_hits(scores, labels)
            if not by_parent:
                return hits
            grouped = [_best_per_parent(row, k) for row in hits]
            if fetch >= self._index.ntotal or all(len(g) >= k for g in grouped):
                return grouped
            fetch = min(fetch * 4, self._index.ntotal)

    def search_arrays(self, query_vectors: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Bulk form of :meth:`search`: ``(scores, ids)``, both shaped (queries, k'), ``k' = min(k, size)``;
        ``ids`` is an object array of strings, None where fewer results exist. No texts, no Hit objects."""
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise IndexError_(f"k must be a positive integer, got {k!r}")
        x = self._prepare(query_vectors, "search")
        if not len(self._docs):
            return np.zeros((len(x), 0), dtype=np.float32), np.zeros((len(x), 0), dtype=object)
        scores, labels = self._search_labels(x, min(int(k), self._index.ntotal))
        ids = self._doc_columns()[0]
        return (-scores if self.metric == "l2" else scores), ids[np.where(labels < 0, len(ids) - 1, labels)]

    def _to_hits(self, scores: np.ndarray, labels: np.ndarray) -> SearchResults:
        return SearchResults(-scores if self.metric == "l2" else scores, labels, self._doc_columns())

    # ----------------------------------------------------------------- tuning

    def tune(self, sample_query_vectors: np.ndarray, target_recall: float = 0.95, k: int = 10,
             reference_ids: Sequence[str] | None = None, reference_vectors: np.ndarray | None = None) -> TuneResult:
        """Pick the cheapest ``nprobe``/``efSearch`` whose recall@k against exact search reaches the target.

        Exact search runs over ``reference_vectors`` (with ``reference_ids``) when given, else over the
        vectors decoded from the index: exact for Flat storage (HNSW32, IVF*,Flat), but for PQ/SQ codecs
        that measures only the search's loss, not the compression's, which the result message says. The
        chosen value is applied, stored in ``tuned`` and saved in the metadata.
        """
        if not 0 < target_recall <= 1:
            raise IndexError_(f"target recall must be in (0, 1], got {target_recall}")
        queries = self._prepare(sample_query_vectors, "tune")
        if not len(self._docs):
            raise IndexError_("cannot tune an empty index")
        if not len(queries):
            raise IndexError_("tune needs at least one sample query")
        k = min(int(k), len(self._docs))
        lossy_reference = reference_vectors is None and self._stores_lossy_codes()
        if reference_vectors is not None:
            if reference_ids is None:
                raise IndexError_("reference_vectors need reference_ids")
            ref_labels = self._docs.labels_for(reference_ids)
            ref = self._prepare(reference_vectors, "tune reference")
        else:
            ref_labels = self._docs.live_labels()
            ref = np.ascontiguousarray(self._reconstruct(ref_labels), dtype=np.float32)
        exact = tuning.exact_neighbours(ref, ref_labels, queries, k, self._index.metric_type)
        del ref

        def search(q: np.ndarray, kk: int) -> np.ndarray:
            return self._search_labels(q, kk)[1]

        if self._knob is None:
            recall = tuning.recall_at_k(search(queries, k), exact)
            result = TuneResult(None, None, round(recall, 4), target_recall, recall >= target_recall, k,
                                len(queries), f"{self.spec} has no search parameter to tune; recall@{k} is "
                                f"{recall:.4f}" + ("" if recall >= target_recall else f", below the target {target_recall}"))
        else:
            result = tuning.sweep(self._knob, lambda v: specs.set_search_param(self._index, self._knob.name, v),
                                  search, queries, exact, k, target_recall, self.spec)
        if lossy_reference:
            result = TuneResult(**{**result.__dict__, "message": result.message + "; exact search ran over "
                                   "vectors decoded from the compressed codes, so compression loss is not counted "
                                   "(pass reference_vectors for that)"})
        self.tuned = {**result.as_dict(), "tuned_at": _now()}
        self.tuned.pop("curve")
        return result

    def _stores_lossy_codes(self) -> bool:
        if isinstance(self._index, quantized.Rescored):
            return self._index.rows.dtype != "float32"
        inner = specs.unwrap(self._index)
        if isinstance(inner, faiss.IndexHNSW):
            inner = faiss.downcast_index(inner.storage)
        return not isinstance(inner, (faiss.IndexFlat, faiss.IndexIVFFlat))  # binary: the bits lose the rest

    # ----------------------------------------------------------------- model checks

    def check_model(self, fingerprint: str, name: str | None = None, force: bool = False) -> None:
        """Refuse a model other than the one that made the vectors, unless ``force``."""
        check_model(self.model_name, self.model_fingerprint, fingerprint, name, force)

    # ----------------------------------------------------------------- info

    def info(self) -> dict:
        return {
            "count": len(self._docs), "dim": self.dim, "spec": self.spec, "metric": self.metric,
            "model": self.model_name, "model_fingerprint": self.model_fingerprint, "model_source": self.model_source,
            "normalized": self.normalized, "trained": self.is_trained, "ntotal": int(self._index.ntotal),
            "marked_deleted": len(self._deleted), "removes_in_place": self._removes_in_place,
            "search_params": self.search_params(), "tuned": self.tuned, "build": self.build_params,
            "created": self.created, "generation": self._generation,
            "chunked": any(p is not None for p in self._docs.parents), **_versions(),
            "path": str(self.path) if self.path else None,
        }

    def memory(self) -> dict:
        """Bytes per vector: ``codes`` held in memory for search (float32: 4 x dim; SQ8: dim; binary: dim / 8),
        ``index`` the whole FAISS structure per vector (codes + ids + graph or lists: its serialised size),
        ``rescore_on_disk`` the memory-mapped rescoring rows, and ``float32`` for comparison. ``index`` is the
        saved file's size when the index is as saved, else the index is serialised to count (not free)."""
        index = self._index
        base = index.base if isinstance(index, quantized.Rescored) else index
        inner = specs.unwrap(base)
        if isinstance(inner, faiss.IndexHNSW):
            inner = faiss.downcast_index(inner.storage)
        codes = getattr(inner, "code_size", None)
        n = max(int(index.ntotal), 1)
        size = [self._faiss_bytes or 0]

        def count(data) -> int:
            size[0] += len(data)
            return len(data)

        if self._faiss_bytes is None:
            _write_faiss(base, faiss.PyCallbackIOWriter(count))
        out = {"codes": int(codes) if codes is not None else None, "index": round(size[0] / n, 1),
               "rescore_on_disk": index.rows.row_bytes if isinstance(index, quantized.Rescored) else 0,
               "float32": 4 * self.dim}
        out["float32_over_index"] = round(out["float32"] / out["index"], 2) if index.ntotal else None
        return out

    # ----------------------------------------------------------------- save / load

    def save(self, path: str | Path, compact: bool | None = None, wait: float | None = DEFAULT_WAIT) -> Path:
        """Write the index folder as a new generation, under the folder's writer lock (see :mod:`.storage`).

        An index loaded from ``path`` saves only onto the state it was loaded from: if another writer saved
        in between, nothing is written and :class:`IndexError_` says so (use :meth:`IndexFolder.update
        <embedkit.index.folder.IndexFolder.update>` to hold the lock from load to save). A new index replaces
        what the folder holds. A BM25 index kept in the folder stays if this save leaves the documents as
        they were (``tune``); otherwise the save is refused, as it would leave BM25 out of step (save both
        with ``IndexFolder``). ``compact=None`` compacts when over 20% of the vectors are marked deleted;
        ``wait``: seconds to wait for another writer (None: no limit).
        """
        folder = Path(path)

        def write(out: storage.GenerationWriter, current: dict | None) -> dict:
            meta = self.write_files(out, compact)
            bm25 = current.get("bm25") if current else None
            if bm25 is not None:
                if bm25.get("paired_with") != out.records[meta["roles"]["docs"]]["sha256"]:
                    raise IndexError_(f"{folder}: also holds a BM25 index over the documents as they were; saving "
                                      "only the FAISS side would leave it behind. Save both with "
                                      "embedkit.index.IndexFolder (update(), or IndexFolder(index).save() to drop it)")
                meta["bm25"] = bm25
                meta["keep_files"] = meta.get("keep_files", []) + list(bm25["roles"].values())
            return meta

        self.saved_to(folder, storage.save_generation(folder, write, self.base_generation(folder), wait))
        return folder

    def base_generation(self, folder: Path) -> str | None:
        """The generation this object's state builds on, if it was loaded from or saved to ``folder`` (None: a
        new index, which replaces what the folder holds)."""
        if self.path is None or self._generation is None or not folder.exists():
            return None
        return self._generation if os.path.samefile(self.path, folder) else None

    def saved_to(self, folder: Path, manifest: dict) -> None:
        """Remember the generation just saved, so that the next save checks against it."""
        self.path, self._generation = folder, storage.generation_of(manifest)
        self._lists, self._lists_pending = manifest["roles"].get("lists"), None

    def write_files(self, out: storage.GenerationWriter, compact: bool | None = None) -> dict:
        """Write this index's files into a new generation; returns its part of the manifest."""
        if compact or (compact is None and self._deleted
                       and len(self._deleted) >= COMPACT_FRACTION * self._index.ntotal):
            self.compact()
        gen = out.generation
        names = {"faiss": f"index-{gen}.faiss", "docs": f"docs-{gen}.jsonl"}
        keep = []
        lists = ondisk_lists(self._index)
        if lists is not None:
            names["lists"] = self._lists_into(out)
            keep = [] if names["lists"] in out.records else [names["lists"]]
            lists.filename = str((out.folder / names["lists"]).resolve())  # what the FAISS file records
        rescored = self._index if isinstance(self._index, quantized.Rescored) else None
        with out.file(names["faiss"]) as f:  # every byte through NewFile
            _write_faiss(rescored.base if rescored else self._index, faiss.PyCallbackIOWriter(f.write))
        self._faiss_bytes = out.records[names["faiss"]]["bytes"]
        if rescored is not None:
            names["rescore"] = f"rescore-{gen}.npy"
            with out.file(names["rescore"]) as f:
                np.save(f, rescored.rows.rows, allow_pickle=False)
        with out.file(names["docs"]) as f:
            self._docs.write(f)
        if self._deleted:
            names["deleted"] = f"deleted-{gen}.npy"
            with out.file(names["deleted"]) as f:
                np.save(f, np.array(sorted(self._deleted), dtype=np.int64), allow_pickle=False)
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, **_versions(),
            "spec": self.spec, "metric": self.metric, "dim": self.dim, "count": len(self._docs),
            "ntotal": int(self._index.ntotal), "labels": self._docs.next_label, "normalized": self.normalized,
            "model": {"name": self.model_name, "fingerprint": self.model_fingerprint, "source": self.model_source},
            "created": self.created, "saved": _now(), "search_params": self.search_params(),
            "tuned": self.tuned, "build": self.build_params, "marked_deleted": len(self._deleted),
            "faiss_header": out.head(names["faiss"]).decode("latin-1"), "roles": names,
            **({"keep_files": keep} if keep else {}),
            **({"rescore": {"dtype": rescored.rows.dtype, "ranges": None if rescored.rows.ranges is None
                            else rescored.rows.ranges.tolist()}} if rescored is not None else {}),
        }

    def _lists_into(self, out: storage.GenerationWriter) -> str:
        """The lists file's name in the generation ``out`` writes: a merged file moved in, or the folder's
        own (unchanged, kept). Lists files are large and written once, so they never move between folders."""
        if self._lists_pending is not None:
            name = f"lists-{out.generation}.ivfdata"
            out.adopt(name, self._lists_pending)
            return name
        if self.path is None or not os.path.samefile(self.path, out.folder):
            raise IndexError_(f"this index's inverted lists are a file of {self.path}; it can be saved only "
                              "there (build it again, with --on-disk, for another folder)")
        return self._lists

    @classmethod
    def load(cls, path: str | Path, mmap: bool = False, verify: bool = False) -> "FaissIndex":
        """Open an index folder's current generation (complete even while a writer saves; no lock needed).

        Every file is checked against the manifest's size and SHA-256 before it is parsed, so a damaged
        file is refused in one line rather than half-read (FAISS can exhaust memory on a corrupt length
        field). ``mmap``: map the FAISS file instead of reading it (Flat/IVF storage is paged in on use),
        read-only; the mapped file is checksummed only with ``verify`` (reading it all would defeat the map).
        An IVF built on disk always maps its lists file (sizes checked; its checksum only with ``verify``).
        """
        with storage.open_generation(path) as generation:
            return cls.from_generation(generation, mmap, verify)

    @classmethod
    def from_generation(cls, generation: storage.Generation, mmap: bool = False, verify: bool = False) -> "FaissIndex":
        """The FAISS side of an open generation (see :func:`embedkit.index.storage.open_generation`)."""
        folder, meta = generation.folder, check_manifest(generation.folder, generation.manifest)
        roles = meta["roles"]
        parsed = quantized.parse_spec(meta["spec"])
        # reading these whole would defeat the map: SHA-256 only with verify (the rescore rows' size always)
        mapped = {"lists", "rescore"} | ({"faiss"} if mmap else set())
        generation.check([name for role, name in roles.items() if verify or role not in mapped])
        if "rescore" in roles and not verify:
            generation.check_sizes([roles["rescore"]])
        faiss_path = generation.path(roles["faiss"])
        with open(faiss_path, "rb") as f:
            header = f.read(4).decode("latin-1")
        if header != meta["faiss_header"]:
            raise IndexError_(f"{folder / roles['faiss']}: bad header {header!r} (expected {meta['faiss_header']!r}); "
                              "the file is corrupt")
        index = _read_faiss(faiss_path, folder / roles["faiss"], mmap, lists_on_disk="lists" in roles,
                            binary=parsed.binary)
        if "lists" in roles:
            _map_lists(index, generation, roles["lists"])
        if parsed.binary:
            index = quantized.BinaryIndex(index, int(meta["dim"]))
        if parsed.rescore is not None:
            index = _rescored(index, parsed.rescore, generation, meta)
        docs = DocStore.read(generation.path(roles["docs"]), folder / roles["docs"])
        deleted: set[int] = set()
        if "deleted" in roles:
            try:
                deleted = set(np.load(generation.path(roles["deleted"]), allow_pickle=False).astype(np.int64).tolist())
            except Exception as exc:  # numpy raises ValueError, EOFError, SyntaxError, TokenError on damaged headers
                raise IndexError_(f"{folder / roles['deleted']}: corrupt ({storage.one_line(exc)})") from None
        if index.d != meta["dim"] or len(docs) != meta["count"] or index.ntotal != meta["ntotal"] \
                or docs.next_label != meta["labels"] or index.ntotal != len(docs) + len(deleted):
            raise IndexError_(f"{folder}: files disagree with the manifest (dim {index.d}/{meta['dim']}, "
                              f"vectors {index.ntotal}/{meta['ntotal']}, documents {len(docs)}/{meta['count']}); "
                              "the folder is corrupt")
        self = cls.__new__(cls)
        self.metric, self.spec, self.dim = meta["metric"], meta["spec"], int(meta["dim"])
        model = meta.get("model") or {}
        self.model_name, self.model_fingerprint, self.model_source = (model.get("name"), model.get("fingerprint"),
                                                                      model.get("source"))
        self.created, self.tuned = meta.get("created"), meta.get("tuned")
        self.path, self._generation = folder, generation.generation
        self.build_params = meta.get("build") or {}
        self._index, self._docs, self._deleted, self._read_only = index, docs, deleted, mmap
        self._lists, self._lists_pending = roles.get("lists"), None
        self._setup()
        self._faiss_bytes = meta["files"][roles["faiss"]]["bytes"]
        if meta.get("search_params"):
            try:
                self.set_search_params(**meta["search_params"])
            except (IndexError_, TypeError, ValueError) as exc:
                raise IndexError_(f"{folder / MANIFEST}: field 'search_params': {exc}") from None
        return self


_FIELDS = {"spec": str, "metric": str, "dim": int, "count": int, "ntotal": int, "labels": int, "faiss_header": str,
           "roles": dict}


def check_manifest(folder: Path, meta: dict) -> dict:
    """The FAISS side of a manifest, checked field by field (one line naming the field if not)."""
    where = folder / MANIFEST
    if meta.get("format") != FORMAT:
        raise IndexError_(f"{where}: not an embedkit FAISS index manifest")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise IndexError_(f"{where}: field 'format_version' must be a positive integer")
    if version > FORMAT_VERSION:
        raise IndexError_(f"{folder}: index format {version} is newer than this embedkit understands "
                          f"({FORMAT_VERSION}); upgrade embedkit")
    for key, kind in _FIELDS.items():
        value = meta.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
            raise IndexError_(f"{where}: field {key!r} missing or not "
                              f"{'a non-negative integer' if kind is int else 'a ' + kind.__name__}")
    roles = meta["roles"]
    for role in ("faiss", "docs") + tuple(r for r in ("deleted", "lists", "rescore") if r in roles):
        if not isinstance(roles.get(role), str) or roles[role] not in meta["files"]:
            raise IndexError_(f"{where}: field 'roles.{role}' does not name a file of the manifest")
    try:
        specs.check_metric(meta["metric"])
    except IndexError_ as exc:
        raise IndexError_(f"{where}: field 'metric': {exc}") from None
    for key in ("model", "build", "tuned", "search_params", "bm25", "rescore"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            raise IndexError_(f"{where}: field {key!r} must be an object")
    return meta


def _write_faiss(index, writer) -> None:
    if isinstance(index, quantized.BinaryIndex):
        index.write(writer)
    else:
        faiss.write_index(index, writer)


def _rescored(base, dtype: str, generation: storage.Generation, meta: dict) -> quantized.Rescored:
    """The rescore rows of a generation, memory-mapped (read-only), checked against the manifest."""
    name = meta["roles"]["rescore"]
    shown = generation.display(name)
    section = meta.get("rescore")
    if not isinstance(section, dict) or section.get("dtype") != dtype:
        raise IndexError_(f"{generation.folder / MANIFEST}: field 'rescore' missing or not for {dtype} rows")
    try:
        rows = np.load(generation.path(name), mmap_mode="r", allow_pickle=False)
        ranges = None if section.get("ranges") is None else np.asarray(section["ranges"], dtype=np.float32)
    except Exception as exc:  # numpy raises ValueError, EOFError, OSError... on a damaged file
        raise IndexError_(f"{shown}: corrupt rescore rows ({storage.one_line(exc)})") from None
    quantized.check_rows(rows, dtype, int(meta["dim"]), int(meta["labels"]), shown)
    if dtype == "int8" and (ranges is None or ranges.shape != (2, int(meta["dim"]))):
        raise IndexError_(f"{generation.folder / MANIFEST}: field 'rescore.ranges' must be 2 x {meta['dim']} numbers")
    factor = (meta.get("search_params") or {}).get("rescore_factor", quantized.DEFAULT_RESCORE_FACTOR)
    return quantized.Rescored(base, quantized.RescoreRows(dtype, int(meta["dim"]), rows, ranges), factor)


def _map_lists(index: faiss.Index, generation: storage.Generation, name: str) -> None:
    """Map the generation's lists file (read without its data, see ``_read_faiss``). FAISS's file names the
    lists by the absolute path they had when saved; the generation's own open file is mapped instead, so
    the folder may move and a writer that switches generations meanwhile cannot take the file away."""
    lists, shown = ondisk_lists(index), generation.display(name)
    if lists is None:
        raise IndexError_(f"{generation.display(MANIFEST)}: names a lists file, but the FAISS index keeps its "
                          "inverted lists in memory; the folder is corrupt")
    size = os.stat(generation.path(name)).st_size
    if size != generation.manifest["files"][name]["bytes"] or size < lists.totsize:
        raise IndexError_(f"{shown}: truncated or overwritten ({size} bytes, the manifest says "
                          f"{generation.manifest['files'][name]['bytes']}); the folder is corrupt")
    lists.filename = generation.path(name)
    lists.do_mmap()  # read-only (read with IO_FLAG_READ_ONLY); the mapping outlives the file descriptor
    lists.filename = str(shown.resolve())


def _read_faiss(path: str, shown: Path, mmap: bool, lists_on_disk: bool = False, binary: bool = False):
    """``faiss.read_index`` (``read_index_binary`` for binary specs); with ``mmap``, the flat-codes mapping
    (Flat, HNSW storage, PQ, IVF lists) where the type takes it, else FAISS's older inverted-list mapping
    (the two cannot be combined for IVF). ``lists_on_disk``: an IVF merged on disk, read without mapping
    its lists (see ``_map_lists``)."""
    attempts = ([faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY, faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY]
                if mmap else [0])
    if lists_on_disk:
        attempts = [faiss.IO_FLAG_SKIP_IVF_DATA | faiss.IO_FLAG_READ_ONLY]
    read = faiss.read_index_binary if binary else faiss.read_index
    for flags in attempts:
        try:
            return read(path, flags)
        except RuntimeError as exc:
            error = str(exc).strip().splitlines()[-1]
    raise IndexError_(f"{shown}: corrupt FAISS file ({error})")


def check_model(recorded_name: str | None, recorded_fingerprint: str | None, fingerprint: str,
                name: str | None = None, force: bool = False) -> None:
    """Refuse a model whose fingerprint differs from the one recorded with the vectors, unless ``force``."""
    if force or recorded_fingerprint is None or fingerprint == recorded_fingerprint:
        return
    raise IndexError_(f"the index was built with model {recorded_name or '?'} (fingerprint {recorded_fingerprint}) "
                      f"but the given model {name or '?'} has fingerprint {fingerprint}; its vectors are not "
                      "comparable (pass --force / force=True to use it anyway)")


def read_index_manifest(path: str | Path) -> dict:
    """The checked manifest of an index folder, read without loading the index (model, build settings, ...)."""
    folder = Path(path)
    return check_manifest(folder, storage.read_manifest(folder))


def _best_per_parent(hits: list[Hit], k: int) -> list[Hit]:
    seen: set[str] = set()
    out = []
    for hit in hits:
        if hit.document_id not in seen:
            seen.add(hit.document_id)
            out.append(hit)
            if len(out) == k:
                break
    return out
