"""``FaissIndex``: a FAISS index with string ids, stored texts, safe saving and recall tuning.

Metrics: ``cosine`` (vectors are L2-normalised on add and search, then inner product), ``ip`` and ``l2``.
Specs are FAISS ``index_factory`` strings (``Flat``, ``HNSW32``, ``IVF1024,Flat``, ``IVF256,PQ16``, ...).

Training: specs that need it (IVF, PQ) train on the first batch passed to ``add`` unless ``train`` was
called first; :func:`embedkit.index.build.build_index` collects a large enough sample before its first add.

Removal: where FAISS deletes in place (Flat, IVF, PQ) ``remove`` deletes. HNSW cannot delete, so removed
vectors are marked deleted and filtered out of every search by an ``IDSelector``; ``compact()`` rebuilds
the graph without them, and ``save`` compacts by itself once a fifth of the vectors are marked deleted.

Search parameters: ``nprobe`` (IVF) and ``efSearch`` (HNSW) are set by hand (``set_search_params``) or by
``tune``, and saved. New HNSW indexes start at efSearch 64 (FAISS's 16 loses ~3% recall@10 on real
embeddings), and a search for more than efSearch hits widens the beam to k, as hnswlib does.

Folder layout (see :mod:`embedkit.index.storage` for why saving is crash-safe)::

    meta.json                 manifest: versions, spec, metric, dim, count, model, tuning, file checksums
    index-<gen>.faiss         the FAISS index (faiss.write_index)
    docs-<gen>.jsonl          row i = the document with label i: {"id", "text", "title", "parent"} or null
    deleted-<gen>.npy         labels marked deleted (HNSW only), int64, loaded with allow_pickle=False
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Sequence

import faiss
import numpy as np

from embedkit.errors import IndexError_
from embedkit.index import specs, storage, tuning
from embedkit.index.docstore import DocStore
from embedkit.index.hits import Hit, SearchResults, TuneResult

FORMAT = "embedkit-faiss-index"
FORMAT_VERSION = 1
MANIFEST = "meta.json"
_PREFIXES = ("index-", "docs-", "deleted-")
COMPACT_FRACTION = 0.2


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    try:
        embedkit_version = version("embedkit")
    except PackageNotFoundError:  # running from a source tree that is not installed
        embedkit_version = "unknown"
    return {"embedkit": embedkit_version, "faiss": faiss.__version__}


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
        self._docs = DocStore()
        self._deleted: set[int] = set()
        self._read_only = False
        self._setup()

    def _setup(self) -> None:
        self._removes_in_place = specs.can_remove_in_place(self._index) if not self._read_only else True
        self._knob = specs.search_knob(self._index)
        self._columns: tuple | None = None
        self._deleted_filter: tuple | None = None

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
        return {self._knob.name: specs.get_search_param(self._index, self._knob.name)} if self._knob else {}

    def set_search_params(self, **params: int) -> None:
        """Set ``nprobe`` (IVF) or ``efSearch`` (HNSW) by hand."""
        for name, value in params.items():
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

    def _changed(self) -> None:
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

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, texts: Sequence[str] | None = None,
               titles: Sequence[str] | None = None, parents: Sequence[str] | None = None) -> None:
        """Replace the documents with these ids (adding those that are new)."""
        self._writable()
        ids = [str(i) for i in ids]
        self._prepare(vectors, "upsert")  # refuse bad vectors before removing anything
        DocStore().check_new_ids(ids)  # duplicates within the batch
        present = [i for i in ids if i in self._docs]
        if present:
            self.remove(present)
        self.add(ids, vectors, texts, titles, parents)

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
        if not fresh.is_trained:
            fresh.train(vectors)
        if len(labels):
            fresh.add_with_ids(vectors, labels)
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
            if self._deleted or k > ef:
                if self._deleted_filter is None:
                    params = faiss.SearchParametersHNSW()
                    keep = batch = None
                    if self._deleted:
                        batch = faiss.IDSelectorBatch(np.fromiter(self._deleted, dtype=np.int64))
                        keep = faiss.IDSelectorNot(batch)
                        params.sel = keep
                    self._deleted_filter = (params, keep, batch)  # the selectors must outlive the parameters
                params = self._deleted_filter[0]
                params.efSearch = max(ef, k)
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
        inner = specs.unwrap(self._index)
        if isinstance(inner, faiss.IndexHNSW):
            inner = faiss.downcast_index(inner.storage)
        return not isinstance(inner, (faiss.IndexFlat, faiss.IndexIVFFlat))

    # ----------------------------------------------------------------- model checks

    def check_model(self, fingerprint: str, name: str | None = None, force: bool = False) -> None:
        """Refuse a model other than the one that made the vectors, unless ``force``."""
        if force or self.model_fingerprint is None or fingerprint == self.model_fingerprint:
            return
        raise IndexError_(f"the index was built with model {self.model_name or '?'} (fingerprint "
                          f"{self.model_fingerprint}) but the given model {name or '?'} has fingerprint "
                          f"{fingerprint}; its vectors are not comparable (pass --force / force=True to use it anyway)")

    # ----------------------------------------------------------------- info

    def info(self) -> dict:
        return {
            "count": len(self._docs), "dim": self.dim, "spec": self.spec, "metric": self.metric,
            "model": self.model_name, "model_fingerprint": self.model_fingerprint, "model_source": self.model_source,
            "normalized": self.normalized, "trained": self.is_trained, "ntotal": int(self._index.ntotal),
            "marked_deleted": len(self._deleted), "removes_in_place": self._removes_in_place,
            "search_params": self.search_params(), "tuned": self.tuned, "build": self.build_params,
            "created": self.created,
            "chunked": any(p is not None for p in self._docs.parents), **_versions(),
            "path": str(self.path) if self.path else None,
        }

    # ----------------------------------------------------------------- save / load

    def save(self, path: str | Path, compact: bool | None = None) -> Path:
        """Write the index folder crash-safely; ``compact=None`` compacts when over 20% is marked deleted."""
        folder = Path(path)
        if folder.exists() and not folder.is_dir():
            raise IndexError_(f"{folder}: exists and is not a folder")
        if folder.is_dir() and any(folder.iterdir()) and not (folder / MANIFEST).is_file():
            raise IndexError_(f"{folder}: not empty and not an embedkit index; refusing to write into it")
        if compact or (compact is None and self._deleted
                       and len(self._deleted) >= COMPACT_FRACTION * self._index.ntotal):
            self.compact()
        folder.mkdir(parents=True, exist_ok=True)
        gen = storage.new_generation()
        names = {"faiss": f"index-{gen}.faiss", "docs": f"docs-{gen}.jsonl"}
        if self._deleted:
            names["deleted"] = f"deleted-{gen}.npy"
        try:
            faiss.write_index(self._index, str(folder / names["faiss"]))
            self._docs.write(folder / names["docs"])
            if self._deleted:
                np.save(folder / names["deleted"], np.array(sorted(self._deleted), dtype=np.int64),
                        allow_pickle=False)
            files = {name: storage.file_record(folder / name) for name in names.values()}
            with open(folder / names["faiss"], "rb") as f:
                header = f.read(4).decode("latin-1")
            meta = {
                "format": FORMAT, "format_version": FORMAT_VERSION, **_versions(),
                "spec": self.spec, "metric": self.metric, "dim": self.dim, "count": len(self._docs),
                "ntotal": int(self._index.ntotal), "labels": self._docs.next_label, "normalized": self.normalized,
                "model": {"name": self.model_name, "fingerprint": self.model_fingerprint, "source": self.model_source},
                "created": self.created, "saved": _now(), "search_params": self.search_params(),
                "tuned": self.tuned, "build": self.build_params, "marked_deleted": len(self._deleted), "faiss_header": header,
                "roles": names, "files": files,
            }
            storage.write_json_atomic(folder / MANIFEST, meta)
        except BaseException:
            for name in names.values():
                (folder / name).unlink(missing_ok=True)
            raise
        storage.remove_stale(folder, set(names.values()), _PREFIXES)
        self.path = folder
        return folder

    @classmethod
    def load(cls, path: str | Path, mmap: bool = False, verify: bool = False) -> "FaissIndex":
        """Open an index folder. Sizes and headers are always checked; ``verify`` also checks SHA-256 sums.

        ``mmap``: map the FAISS file instead of reading it (Flat/IVF storage is paged in on use), read-only.
        """
        folder = Path(path)
        meta = storage.read_manifest(folder, MANIFEST, "embedkit index")
        if meta.get("format") != FORMAT:
            raise IndexError_(f"{folder / MANIFEST}: not an embedkit FAISS index manifest")
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise IndexError_(f"{folder}: index format {meta['format_version']} is newer than this embedkit "
                              f"understands ({FORMAT_VERSION}); upgrade embedkit")
        try:
            roles, files = meta["roles"], meta["files"]
            faiss_path = folder / roles["faiss"]
            expected_header = meta["faiss_header"]
        except (KeyError, TypeError) as exc:
            raise IndexError_(f"{folder / MANIFEST}: manifest lacks {exc}") from None
        storage.check_files(folder, files, verify)
        with open(faiss_path, "rb") as f:
            header = f.read(4).decode("latin-1")
        if header != expected_header:
            raise IndexError_(f"{faiss_path}: bad header {header!r} (expected {expected_header!r}); the file is corrupt")
        index = _read_faiss(faiss_path, mmap)
        docs = DocStore.read(folder / roles["docs"])
        deleted: set[int] = set()
        if "deleted" in roles:
            try:
                deleted = set(np.load(folder / roles["deleted"], allow_pickle=False).tolist())
            except (ValueError, OSError) as exc:
                raise IndexError_(f"{folder / roles['deleted']}: corrupt ({exc})") from None
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
        self.created, self.tuned, self.path = meta.get("created"), meta.get("tuned"), folder
        self.build_params = meta.get("build") or {}
        self._index, self._docs, self._deleted, self._read_only = index, docs, deleted, mmap
        self._setup()
        if meta.get("search_params"):
            self.set_search_params(**meta["search_params"])
        return self


def _read_faiss(path: Path, mmap: bool) -> faiss.Index:
    """``faiss.read_index``; with ``mmap``, the flat-codes mapping (Flat, HNSW storage, PQ, IVF lists) where
    the type takes it, else FAISS's older inverted-list mapping (the two cannot be combined for IVF)."""
    attempts = ([faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY, faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY]
                if mmap else [0])
    for flags in attempts:
        try:
            return faiss.read_index(str(path), flags)
        except RuntimeError as exc:
            error = str(exc).strip().splitlines()[-1]
    raise IndexError_(f"{path}: corrupt FAISS file ({error})")


def saved_documents_checksum(path: str | Path) -> str:
    """SHA-256 of the saved document table: it changes when documents are added or removed, not when
    only search parameters are (``tune``), so a BM25 index saved with it stays paired across tunes."""
    meta = storage.read_manifest(Path(path), MANIFEST, "embedkit index")
    return meta["files"][meta["roles"]["docs"]]["sha256"]


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
