"""A served index: its FAISS and BM25 indexes, its model, and the lock that keeps searches whole.

Searches hold a shared lock while they read; a write builds everything it can outside the lock (the
vectors, a new BM25 index) and holds the exclusive lock only to change the FAISS index in memory and
swap in the new BM25 index, then bumps ``version``. A search therefore sees the state before a write or
after it, never a mix, and waits at most for that short in-memory step (not for encoding, the log's
fsync or the BM25 rebuild). The lock prefers writers, so a stream of searches cannot starve a write.

What changes the state is an :class:`Upsert` or a :class:`Delete`, each idempotent ("document d is now
this" / "document d is gone"), so replaying the write-ahead log over a checkpoint that already holds a
prefix of it ends in the same state (see :mod:`embedkit.serve.writer`).
"""
from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from embedkit.errors import IndexError_
from embedkit.index import BM25Index, FaissIndex, HybridSearcher, IndexFolder
from embedkit.data import Document, full_text
from embedkit.index.chunking import Chunker
from embedkit.index.hits import Hit

MODES = ("dense", "bm25", "hybrid")
CHUNK_ID = re.compile(r"#\d+$")  # how embedkit.index.chunking names a document's chunks


class ReadWriteLock:
    """Many readers or one writer; a waiting writer holds off new readers."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writing or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


@dataclass(frozen=True)
class Row:
    """One FAISS row: a whole document, or one chunk of it (``parent`` names the document)."""
    id: str
    text: str
    title: str
    parent: str | None


@dataclass(frozen=True)
class Upsert:
    documents: list[Document]
    rows: list[Row]
    vectors: np.ndarray  # float32, one per row


@dataclass(frozen=True)
class Delete:
    ids: list[str]


class ServedIndex:
    def __init__(self, name: str, folder: IndexFolder, model, fingerprint: str, query_prompt: str,
                 document_prompt: str, chunker: Chunker | None):
        """``folder``: the generation loaded; ``fingerprint``: the model's; ``chunker``: how new documents are split, for an index built
        with ``--chunk-tokens`` (with a tokenizer of its own: the model's belongs to the batcher's first worker)."""
        self.name, self.dense, self.bm25, self.model = name, folder.index, folder.bm25, model
        self.fingerprint = fingerprint
        # the encoding path the index was built with (embedkit.encoding.backends): queries, new documents
        # and /v1/embeddings go through it too, as `embedkit index search` and `index add` do
        self.backend = folder.index.build_params.get("backend") or "torch"
        self.generation = folder.generation  # the saved generation the state builds on (writer's thread)
        self.query_prompt, self.document_prompt = query_prompt, document_prompt
        self.chunker, self.chunker_lock = chunker, threading.Lock()
        self.version = 0  # writes applied since the server started
        self._lock = ReadWriteLock()

    # ------------------------------------------------------------------ reading

    def search(self, mode: str, query: str, vector: np.ndarray | None, k: int) -> tuple[list[Hit], int]:
        """Top-``k`` hits for one query and the version they come from; ``vector`` for dense and hybrid."""
        with self._lock.reading():
            if mode == "dense":
                hits = self.dense.search(vector, k, by_parent=True)[0]
            elif mode == "hybrid":
                hits = HybridSearcher(self.dense, self.bm25).search([query], k, query_vectors=vector)[0]
            else:
                hits = self.bm25.search([query], k)[0]
                rows = self._document_rows([h.id for h in hits])  # BM25 keeps ids and texts only
                hits = [Hit(h.id, h.score, r.text if r else None, r.title if r else None, None)
                        for h, r in zip(hits, rows)]
            return hits, self.version

    def rows_of(self, doc_id: str) -> list[Hit]:
        """The rows document ``doc_id`` is stored as: itself, or its chunks in order; [] when absent."""
        with self._lock.reading():
            return self._rows_of(doc_id)

    def has(self, doc_id: str) -> bool:
        return bool(self.rows_of(doc_id))

    def count(self) -> int:
        return len(self.dense)

    def _rows_of(self, doc_id: str) -> list[Hit]:
        whole, first = self.dense.get([doc_id, f"{doc_id}#0"])
        if whole is not None and whole.parent_id is None:
            return [whole]
        if first is None or first.parent_id != doc_id:
            return []
        chunks, n = [first], 1
        while (chunk := self.dense.get([f"{doc_id}#{n}"])[0]) is not None:
            chunks.append(chunk)
            n += 1
        return chunks

    def _document_rows(self, doc_ids: list[str]) -> list[Hit | None]:
        """Each document's first row (itself, or its first chunk), None when absent."""
        return [next(iter(self._rows_of(doc_id)), None) for doc_id in doc_ids]

    # ------------------------------------------------------------------ writing (the writer's thread only)

    def apply(self, changes: list[Upsert | Delete]) -> None:
        """Make ``changes`` visible, in order, as one step (see the module docstring)."""
        bm25 = self._next_bm25(changes) if self.bm25 is not None else None
        with self._lock.writing():
            for change in changes:
                ids = [d.id for d in change.documents] if isinstance(change, Upsert) else change.ids
                present = [i for i in ids if self._rows_of(i)]
                if present:
                    self.dense.remove_documents(present)
                if isinstance(change, Upsert):
                    p = change.rows
                    self.dense.add([x.id for x in p], change.vectors, texts=[x.text for x in p],
                                   titles=[x.title for x in p], parents=[x.parent for x in p])
            self.bm25 = bm25
            self.version += 1

    def replace(self, folder: IndexFolder) -> None:
        """Serve another generation of the folder (one another writer saved), as one step. It must hold
        vectors of the same model and, if this index has a BM25 side, one too (the routes rely on it)."""
        new, old = folder.index, self.dense
        new.check_model(self.fingerprint, old.model_name)
        if (new.dim, new.build_params.get("chunk_tokens")) != (old.dim, old.build_params.get("chunk_tokens")):
            raise IndexError_(f"{self.name}: the folder now holds an index of another shape (dimension or "
                              "chunking); restart the server to serve it")
        if self.bm25 is not None and folder.bm25 is None:
            raise IndexError_(f"{self.name}: the folder's newest generation has no BM25 index; restart the server")
        with self._lock.writing():
            self.dense, self.bm25 = new, folder.bm25
            self.version += 1
        self.generation = folder.generation

    def _next_bm25(self, changes: list[Upsert | Delete]) -> BM25Index:
        """A new BM25 index with the changes applied (bm25s cannot change an index in place; the old
        one keeps serving searches until the swap)."""
        texts = dict(zip(self.bm25.ids, self.bm25.texts))
        for change in changes:
            if isinstance(change, Upsert):
                texts.update((d.id, full_text(d.title, d.text)) for d in change.documents)
            else:
                for doc_id in change.ids:
                    texts.pop(doc_id, None)
        fresh = BM25Index(self.bm25.k1, self.bm25.b, self.bm25.method)
        fresh.index(list(texts), list(texts.values()))
        return fresh

    def compact(self) -> None:
        """Rebuild an HNSW graph without its deleted marks (searches wait: the graph is replaced)."""
        with self._lock.writing():
            self.dense.compact()
