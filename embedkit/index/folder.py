"""An index folder as a whole: the FAISS index and the BM25 index kept in step beside it.

Both sides live in one generation under one manifest (see :mod:`embedkit.index.storage`), so a reader gets
them as one state and a save switches both at once. This is the write API for anything that changes an
index that others may change too (the CLI, a server)::

    from embedkit.index import IndexFolder

    with IndexFolder.update("idx", wait=5.0) as folder:    # writer lock, then the newest state
        folder.add_vectors(ids, vectors, texts=texts)        # or add_documents(model, docs), remove(ids)
    # saved as one new generation when the block ends; nothing is written if it raises

    folder = IndexFolder.load("idx")                         # readers: no lock, one complete generation
    if IndexFolder.current_generation("idx") != folder.generation:   # another process saved since
        folder = IndexFolder.load("idx")
    problems = IndexFolder.verify("idx")                     # sizes and SHA-256 of every file

``update`` holds the lock from load to save, so concurrent writers queue instead of losing each other's
changes; a writer that waits longer than ``wait`` seconds gets :class:`~embedkit.index.lock.IndexLockedError`.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from embedkit.data import Document
from embedkit.errors import IndexError_
from embedkit.index import storage
from embedkit.index.bm25 import BM25Index
from embedkit.index.build import add_documents
from embedkit.index.faiss_index import FaissIndex
from embedkit.index.lock import DEFAULT_WAIT, writer_lock


class IndexFolder:
    """A :class:`FaissIndex` and, optionally, the :class:`BM25Index` over the same documents."""

    def __init__(self, index: FaissIndex, bm25: BM25Index | None = None):
        self.index, self.bm25 = index, bm25

    # ------------------------------------------------------------------------------------------ reading

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool = False, verify: bool = False,
             need_bm25: bool = False) -> "IndexFolder":
        """Both sides from the folder's current generation (no lock; complete even while a writer saves).

        ``bm25`` is None for a folder without a BM25 side, unless ``need_bm25`` (then that is an error)."""
        with storage.open_generation(path) as generation:
            index = FaissIndex.from_generation(generation, mmap, verify)
            has_bm25 = need_bm25 or generation.manifest.get("bm25") is not None
            if not has_bm25:
                storage.refuse_legacy_bm25(Path(path))
            return cls(index, BM25Index.from_generation(generation) if has_bm25 else None)

    @property
    def generation(self) -> str | None:
        """The saved generation this state is (None before its first save)."""
        return self.index.info()["generation"]

    @staticmethod
    def current_generation(path: str | os.PathLike) -> str:
        """The folder's current generation, from its manifest alone (cheap): a long-lived reader (a server)
        compares it with its loaded state's ``generation`` to know when to load again."""
        return storage.generation_of(storage.read_manifest(path))

    @staticmethod
    def verify(path: str | os.PathLike) -> list[str]:
        """One line per problem: a missing file, a wrong size or SHA-256, a manifest or pairing error.

        An empty list means every file the manifest names is exactly as saved. Files that crashed saves
        left behind are not problems (the next writer removes them)."""
        try:
            with storage.open_generation(path, allow_missing=True) as generation:
                problems = generation.problems()
                if not problems:  # the files are as saved: check they also form a loadable index
                    try:
                        FaissIndex.from_generation(generation)
                        if generation.manifest.get("bm25") is not None:
                            BM25Index.from_generation(generation)
                    except IndexError_ as exc:
                        problems.append(str(exc))
                return problems
        except IndexError_ as exc:
            return [str(exc)]

    @staticmethod
    def leftovers(path: str | os.PathLike) -> list[Path]:
        """Files that interrupted saves left behind, which the next writer removes."""
        folder = Path(path)
        return storage.leftovers(folder, storage.read_manifest(folder))

    # ------------------------------------------------------------------------------------------ writing

    @classmethod
    @contextmanager
    def update(cls, path: str | os.PathLike, wait: float | None = DEFAULT_WAIT) -> Iterator["IndexFolder"]:
        """Hold ``path``'s writer lock, load its newest state, and save it when the block ends.

        ``wait``: seconds to wait for another writer (None: no limit). If the block raises, nothing is
        saved and the folder keeps its state. The lock is re-entrant in the calling thread."""
        storage.read_manifest(path)  # not an index: say so before the lock creates anything there
        with writer_lock(path, wait):
            folder = cls.load(path)
            yield folder
            folder.save(path, wait=wait)

    def save(self, path: str | os.PathLike, wait: float | None = DEFAULT_WAIT, compact: bool | None = None) -> Path:
        """Write both sides as one new generation (one manifest switch), under the writer lock.

        Loaded from ``path``: saves only onto the generation it was loaded from (else nothing is written
        and :class:`IndexError_` says another writer saved). Built anew: replaces what ``path`` holds."""
        folder = Path(path)
        index, bm25 = self.index, self.bm25

        def write(out: storage.GenerationWriter, current: dict | None) -> dict:
            meta = index.write_files(out, compact)
            if bm25 is not None:
                docs_sha = out.records[meta["roles"]["docs"]]["sha256"]
                kept = bm25.saved_section
                if kept is not None and current and current.get("bm25") == kept and kept["paired_with"] == docs_sha:
                    meta["bm25"] = kept  # unchanged (tune)
                    meta["keep_files"] = meta.get("keep_files", []) + list(kept["roles"].values())
                else:
                    meta["bm25"] = bm25.write_files(out, paired_with=docs_sha)
            return meta

        manifest = storage.save_generation(folder, write, index.base_generation(folder), wait)
        index.saved_to(folder, manifest)
        if bm25 is not None:
            bm25.saved_section = manifest["bm25"]
        return folder

    def add_vectors(self, ids: Sequence[str], vectors: np.ndarray, texts: Sequence[str] | None = None,
                    titles: Sequence[str] | None = None, upsert: bool = False) -> int:
        """Add (``upsert``: or replace) documents given as vectors; the BM25 side gets their title and text.

        Returns the number of vectors added. A folder with a BM25 side needs ``texts``."""
        ids = [str(i) for i in ids]
        if self.bm25 is not None:
            if texts is None:
                raise IndexError_("this index keeps a BM25 index beside the vectors, which needs the documents' "
                                  "text: pass texts (on the command line, --corpus)")
            documents = [Document(i, title or "", text) for i, title, text
                         in zip(ids, titles if titles is not None else [None] * len(ids), texts)]
        (self.index.upsert if upsert else self.index.add)(ids, vectors, texts=texts, titles=titles)
        if self.bm25 is not None:
            (self.bm25.upsert if upsert else self.bm25.add)(documents)
        return len(ids)

    def add_documents(self, model, documents: Iterable, upsert: bool = False, batch_size: int = 32,
                      device: str | None = None, show_progress: bool = False, total: int | None = None) -> int:
        """Encode documents (``id``, ``title``, ``text``) as the index was built (its chunking and document
        prompt, through the embedding cache) and add (``upsert``: or replace) them on both sides.

        Returns the number of vectors added (chunks count one each)."""
        documents = list(documents)
        built = self.index.build_params
        added = add_documents(self.index, model, documents, batch_size, built.get("chunk_tokens"),
                              built.get("chunk_overlap") or 32, device, prompt=built.get("document_prompt"),
                              show_progress=show_progress, total=total, upsert=upsert)
        if self.bm25 is not None:
            (self.bm25.upsert if upsert else self.bm25.add)(documents)
        return added

    def remove(self, ids: Sequence[str]) -> int:
        """Remove documents (with all their chunks) from both sides; unknown ids are refused, nothing is
        removed. Returns the number of vectors removed."""
        removed = self.index.remove_documents(ids)
        if self.bm25 is not None:
            present = set(self.bm25.ids)
            self.bm25.remove([i for i in ids if i in present])
        return removed

