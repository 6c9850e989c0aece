"""A BM25 index over ``bm25s``, saved next to the FAISS index without pickle.

Tokenisation: lower-cased words, English stopwords removed, Snowball (PyStemmer) English stemming,
the setup with which bm25s reports SciFact nDCG@10 close to the published Lucene BM25 figure.
bm25s cannot add to or remove from a built index, so ``add``/``remove`` re-index the stored texts
(a few seconds per 100k documents).

Folder layout, beside the FAISS files (same crash-safe generations, see :mod:`embedkit.index.storage`)::

    bm25.json            manifest: parameters, count, file sizes and checksums
    bm25-<gen>/          bm25s.BM25.save output (numpy arrays saved with allow_pickle=False, JSON vocab)
    bm25docs-<gen>.jsonl one {"id", "text"} per indexed document, in index order
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from embedkit.errors import IndexError_
from embedkit.index import storage
from embedkit.index.chunking import full_text
from embedkit.index.hits import Hit

MANIFEST = "bm25.json"
FORMAT = "embedkit-bm25-index"
_PREFIXES = ("bm25-", "bm25docs-")


def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


class BM25Index:
    def __init__(self, k1: float = 1.2, b: float = 0.75, method: str = "lucene"):
        self.k1, self.b, self.method = k1, b, method
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.paired_with: str | None = None  # checksum of the FAISS documents saved with it
        self._retriever = None

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_documents(cls, documents: Iterable, **params) -> "BM25Index":
        """Index documents (objects with ``id``, ``title``, ``text``) on title and text."""
        ids, texts = [], []
        for doc in documents:
            ids.append(doc.id)
            texts.append(full_text(doc.title, doc.text))
        index = cls(**params)
        index.index(ids, texts)
        return index

    def index(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        """(Re)build over exactly these documents."""
        import bm25s

        ids, texts = [str(i) for i in ids], list(texts)
        if len(ids) != len(texts):
            raise IndexError_(f"bm25: {len(ids)} ids for {len(texts)} texts")
        duplicated = [i for i, n in Counter(ids).items() if n > 1]
        if duplicated:
            raise IndexError_(f"bm25: duplicate ids {duplicated[:5]}")
        if not ids:
            self.ids, self.texts, self._retriever = [], [], None
            return
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer(), show_progress=False)
        retriever = bm25s.BM25(k1=self.k1, b=self.b, method=self.method)
        retriever.index(tokens, show_progress=False)
        self.ids, self.texts, self._retriever = ids, texts, retriever

    def add(self, documents: Iterable) -> None:
        new = [(d.id, full_text(d.title, d.text)) for d in documents]
        present = set(self.ids)
        clash = [i for i, _ in new if i in present]
        if clash:
            raise IndexError_(f"bm25: ids already in the index: {clash[:5]}")
        self.index(self.ids + [i for i, _ in new], self.texts + [t for _, t in new])

    def remove(self, ids: Sequence[str]) -> None:
        drop = set(map(str, ids))
        unknown = drop - set(self.ids)
        if unknown:
            raise IndexError_(f"bm25: ids not in the index: {sorted(unknown)[:5]}")
        keep = [(i, t) for i, t in zip(self.ids, self.texts) if i not in drop]
        self.index([i for i, _ in keep], [t for _, t in keep])

    def search(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        """Top-``k`` documents per query by BM25 score (documents matching no query term are left out)."""
        import bm25s

        if k < 1:
            raise IndexError_(f"k must be a positive integer, got {k!r}")
        if self._retriever is None:
            return [[] for _ in queries]
        k = min(k, len(self.ids))
        tokens = bm25s.tokenize(list(queries), stopwords="en", stemmer=_stemmer(), show_progress=False)
        docs, scores = self._retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        out = []
        for row_docs, row_scores in zip(np.asarray(docs), np.asarray(scores)):
            out.append([Hit(self.ids[d], float(s)) for d, s in zip(row_docs.tolist(), row_scores.tolist()) if s > 0])
        return out

    def save(self, path: str | Path, paired_with: str | None = None) -> Path:
        """Crash-safe save. ``paired_with`` identifies the FAISS documents saved beside it
        (``saved_documents_checksum``): the two manifests are switched one after the other, so a crash
        between them leaves a BM25 index one save behind the FAISS one, which ``paired_with`` reveals."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        gen = storage.new_generation()
        arrays, docs = f"bm25-{gen}", f"bm25docs-{gen}.jsonl"
        try:
            if self._retriever is not None:
                self._retriever.save(str(folder / arrays), show_progress=False)
            else:
                (folder / arrays).mkdir()
            with open(folder / docs, "w", encoding="utf-8") as f:
                for doc_id, text in zip(self.ids, self.texts):
                    f.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
            files = {docs: storage.file_record(folder / docs)}
            for p in sorted((folder / arrays).iterdir()):
                files[f"{arrays}/{p.name}"] = storage.file_record(p)
            storage.write_json_atomic(folder / MANIFEST, {
                "format": FORMAT, "k1": self.k1, "b": self.b, "method": self.method, "count": len(self.ids),
                "tokenizer": "bm25s: stopwords=en, PyStemmer english", "arrays": arrays, "docs": docs,
                "paired_with": paired_with, "files": files})
        except BaseException:
            storage.remove_stale(folder, set(), (arrays, docs))
            raise
        storage.remove_stale(folder, {arrays, docs}, _PREFIXES)
        return folder

    @classmethod
    def exists(cls, path: str | Path) -> bool:
        return (Path(path) / MANIFEST).is_file()

    @classmethod
    def load(cls, path: str | Path, verify: bool = False) -> "BM25Index":
        import bm25s

        folder = Path(path)
        meta = storage.read_manifest(folder, MANIFEST, "embedkit BM25 index")
        if meta.get("format") != FORMAT:
            raise IndexError_(f"{folder / MANIFEST}: not an embedkit BM25 manifest")
        storage.check_files(folder, meta["files"], verify)
        self = cls(meta["k1"], meta["b"], meta["method"])
        self.paired_with = meta.get("paired_with")
        with open(folder / meta["docs"], encoding="utf-8") as f:
            try:
                rows = [json.loads(line) for line in f]
                self.ids, self.texts = [r["id"] for r in rows], [r["text"] for r in rows]
            except (ValueError, KeyError, TypeError) as exc:
                raise IndexError_(f"{folder / meta['docs']}: corrupt ({exc})") from None
        if len(self.ids) != meta["count"]:
            raise IndexError_(f"{folder}: BM25 documents disagree with the manifest")
        if self.ids:
            try:
                self._retriever = bm25s.BM25.load(str(folder / meta["arrays"]), show_progress=False,
                                                  allow_pickle=False)
            except Exception as exc:  # bm25s raises ValueError/OSError/JSONDecodeError on damaged files
                raise IndexError_(f"{folder / meta['arrays']}: corrupt BM25 files ({exc})") from None
        return self
