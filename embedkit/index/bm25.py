"""A BM25 index over ``bm25s``, saved next to the FAISS index without pickle.

Tokenisation: lower-cased words, English stopwords removed, Snowball (PyStemmer) English stemming,
the setup with which bm25s reports SciFact nDCG@10 close to the published Lucene BM25 figure.
bm25s cannot add to or remove from a built index, so ``add``/``remove`` re-index the stored texts
(a few seconds per 100k documents).

Kept in an index folder beside the FAISS files, in the same generations and under the same manifest
(its ``bm25`` section: parameters, count, the files' roles, and ``paired_with``, the SHA-256 of the FAISS
document table it was saved with), so one manifest switch changes both sides at once (see
:mod:`embedkit.index.storage` and :class:`embedkit.index.folder.IndexFolder`)::

    bm25-<gen>.<name>        bm25s.BM25.save's files (numpy arrays saved with allow_pickle=False, JSON vocab)
    bm25docs-<gen>.jsonl     one {"id", "text"} per indexed document, in index order
"""
from __future__ import annotations

import json
from collections import Counter
from json.encoder import encode_basestring as _quote  # the C string encoder of json.dumps(ensure_ascii=False)
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from embedkit.errors import IndexError_
from embedkit.index import storage
from embedkit.index.storage import MANIFEST
from embedkit.data.records import full_text
from embedkit.index.hits import Hit

FORMAT = "embedkit-bm25-index"
# bm25s.BM25.load's file-name parameters (``<role>_name``) and the names bm25s.BM25.save gives those files
_BM25S_FILES = {"data": "data.csc.index.npy", "indices": "indices.csc.index.npy", "indptr": "indptr.csc.index.npy",
                "vocab": "vocab.index.json", "params": "params.index.json", "nnoc": "nonoccurrence_array.index.npy"}


def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


class BM25Index:
    def __init__(self, k1: float = 1.2, b: float = 0.75, method: str = "lucene"):
        self.k1, self.b, self.method = k1, b, method
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.saved_section: dict | None = None  # its manifest section, while unchanged since loaded or saved
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

        self.saved_section = None
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
        """Index more documents (objects with ``id``, ``title``, ``text``); ids already present are refused."""
        self._add(documents, upsert=False)

    def upsert(self, documents: Iterable) -> None:
        """Index documents, replacing those whose id is already present."""
        self._add(documents, upsert=True)

    def _add(self, documents: Iterable, upsert: bool) -> None:
        new = {}
        for d in documents:
            if d.id in new:
                raise IndexError_(f"bm25: duplicate id {d.id!r} in one add")
            new[d.id] = full_text(d.title, d.text)
        if not upsert:
            clash = [i for i in new if i in set(self.ids)]
            if clash:
                raise IndexError_(f"bm25: ids already in the index: {clash[:5]} (upsert replaces them)")
        kept = [(i, t) for i, t in zip(self.ids, self.texts) if i not in new]
        self.index([i for i, _ in kept] + list(new), [t for _, t in kept] + list(new.values()))

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

    def write_files(self, out: storage.GenerationWriter, paired_with: str) -> dict:
        """Write this index's files into a new generation; returns the manifest's ``bm25`` section.

        bm25s writes only by path, so it saves into a scratch folder and the files are copied into the
        generation through ``out`` (every byte of a save goes through one writer that flushes it)."""
        gen = out.generation
        roles = {"docs": f"bm25docs-{gen}.jsonl"}
        with out.file(roles["docs"]) as f:
            for start in range(0, len(self.ids), 4096):  # the bytes of json.dumps({"id", "text"}) per row, in blocks
                f.write("".join(f'{{"id": {_quote(doc_id)}, "text": {"null" if text is None else _quote(text)}}}\n'
                                for doc_id, text in zip(self.ids[start:start + 4096], self.texts[start:start + 4096]))
                        .encode("utf-8", "surrogatepass"))
        if self._retriever is not None:
            with out.scratch(f"bm25-{gen}.scratch") as scratch:
                self._retriever.save(str(scratch), show_progress=False)
                made = {p.name for p in scratch.iterdir()}
                unknown = made - set(_BM25S_FILES.values())
                if unknown:
                    raise IndexError_(f"bm25s wrote files this embedkit does not know: {sorted(unknown)}")
                for role, name in _BM25S_FILES.items():
                    if name in made:
                        roles[role] = f"bm25-{gen}.{name}"
                        with open(scratch / name, "rb") as src, out.file(roles[role]) as f:
                            while block := src.read(1 << 20):
                                f.write(block)
        return {"format": FORMAT, "k1": self.k1, "b": self.b, "method": self.method, "count": len(self.ids),
                "tokenizer": "bm25s: stopwords=en, PyStemmer english", "paired_with": paired_with, "roles": roles}

    @classmethod
    def load(cls, path: str | Path) -> "BM25Index":
        """The BM25 side of an index folder's current generation (complete even while a writer saves)."""
        with storage.open_generation(path) as generation:
            return cls.from_generation(generation)

    @classmethod
    def from_generation(cls, generation: storage.Generation) -> "BM25Index":
        """The BM25 side of an open generation; refused if it has none, or one out of step with FAISS.
        Its files are checked against the manifest's sizes and SHA-256 sums before they are parsed."""
        import bm25s

        folder, meta = generation.folder, generation.manifest
        section = check_section(folder, meta)
        roles = section["roles"]
        generation.check(roles.values())
        self = cls(section["k1"], section["b"], section["method"])
        shown = folder / roles["docs"]
        with open(generation.path(roles["docs"]), "rb") as f:
            for number, line in enumerate(f, 1):
                try:
                    row = json.loads(line.decode("utf-8", "surrogatepass"))
                    if not isinstance(row["id"], str) or not isinstance(row["text"], str):
                        raise TypeError("id and text must be strings")
                except (ValueError, KeyError, TypeError, RecursionError) as exc:
                    raise IndexError_(f"{shown}, line {number}: corrupt BM25 document row ({storage.one_line(exc)})") from None
                self.ids.append(row["id"])
                self.texts.append(row["text"])
        if len(self.ids) != section["count"] or len(set(self.ids)) != len(self.ids):
            raise IndexError_(f"{shown}: {len(self.ids)} documents ({len(set(self.ids))} distinct), the manifest "
                              f"says {section['count']}; the folder is corrupt")
        if self.ids:
            paths = {role: Path(generation.path(name)) for role, name in roles.items() if role != "docs"}
            try:
                self._retriever = bm25s.BM25.load(str(paths["params"].parent), show_progress=False,
                                                  allow_pickle=False,
                                                  **{f"{role}_name": p.name for role, p in paths.items()})
            except Exception as exc:  # bm25s raises ValueError/OSError/KeyError/JSONDecodeError on damaged files
                raise IndexError_(f"{folder}: corrupt BM25 files ({storage.one_line(exc)})") from None
        self.saved_section = section
        return self


def check_section(folder: Path, meta: dict) -> dict:
    """The manifest's BM25 section, checked: present, well formed, paired with the FAISS documents."""
    where = folder / MANIFEST
    section = meta.get("bm25")
    if section is None:
        storage.refuse_legacy_bm25(folder)
        raise IndexError_(f"{folder}: has no BM25 index (it was built with --no-bm25 or from embeddings)")
    if not isinstance(section, dict) or section.get("format") != FORMAT:
        raise IndexError_(f"{where}: field 'bm25' is not an embedkit BM25 section")
    roles = section.get("roles")
    if not isinstance(roles, dict) or not isinstance(roles.get("docs"), str) or not all(
            isinstance(name, str) and name in meta["files"] for name in roles.values()):
        raise IndexError_(f"{where}: field 'bm25.roles' must name files of the manifest")
    if set(roles) - {"docs", *_BM25S_FILES} or (len(roles) > 1 and not {"params", "vocab", "data"} <= set(roles)):
        raise IndexError_(f"{where}: field 'bm25.roles' has unknown or missing roles")
    for key, kinds in (("k1", (int, float)), ("b", (int, float)), ("method", str), ("count", int)):
        if not isinstance(section.get(key), kinds) or isinstance(section.get(key), bool):
            raise IndexError_(f"{where}: field 'bm25.{key}' missing or of the wrong type")
    docs_sha = meta["files"].get((meta.get("roles") or {}).get("docs"), {}).get("sha256")
    if section.get("paired_with") != docs_sha:
        raise IndexError_(f"{folder}: the BM25 index is out of step with the FAISS documents (saved with others); "
                          "search with --mode dense, or rebuild with `embedkit index build --force`")
    return section
