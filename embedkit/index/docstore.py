"""String document ids, texts, titles and parents, keyed by the int64 labels FAISS stores.

Labels are positions in parallel lists, handed out in order and never reused, so a label is its row
number in ``docs-<gen>.jsonl`` (a removed document leaves a ``null`` row). Parallel lists of plain
Python objects cost a few pointers per vector, far less than one object per document at 1M vectors.
"""
from __future__ import annotations

import json
from collections import Counter
from json.encoder import encode_basestring as _quote  # the C string encoder of json.dumps(ensure_ascii=False)
from pathlib import Path
from typing import Sequence

import numpy as np

from embedkit.errors import IndexError_
from embedkit.index.storage import one_line


def _optional_column(values: Sequence | None, n: int, name: str) -> list:
    if values is None:
        return [None] * n
    values = list(values)
    if len(values) != n:
        raise IndexError_(f"{name}: {len(values)} values for {n} ids")
    return [None if v is None else str(v) for v in values]


class DocStore:
    def __init__(self) -> None:
        self.ids: list[str | None] = []
        self.texts: list[str | None] = []
        self.titles: list[str | None] = []
        self.parents: list[str | None] = []
        self.label_of: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.label_of)

    def __contains__(self, doc_id: str) -> bool:
        return doc_id in self.label_of

    @property
    def next_label(self) -> int:
        return len(self.ids)

    def check_new_ids(self, ids: Sequence[str]) -> list[str]:
        """The ids as strings, refusing empty, duplicated and already-present ones (nothing is changed)."""
        ids = [str(i) for i in ids]
        if any(not i for i in ids):
            raise IndexError_("document ids must be non-empty strings")
        duplicated = [i for i, n in Counter(ids).items() if n > 1]
        if duplicated:
            raise IndexError_(f"duplicate ids in one add: {_some(duplicated)}")
        present = [i for i in ids if i in self.label_of]
        if present:
            raise IndexError_(f"ids already in the index: {_some(present)} (use upsert to replace them: "
                              "`embedkit index upsert`, IndexFolder.add_vectors(upsert=True), FaissIndex.upsert)")
        return ids

    def add(self, ids: Sequence[str], texts=None, titles=None, parents=None) -> np.ndarray:
        """Register ids (already checked) and return their new labels."""
        n = len(ids)
        texts, titles, parents = (_optional_column(texts, n, "texts"), _optional_column(titles, n, "titles"),
                                  _optional_column(parents, n, "parents"))
        start = self.next_label
        for offset, doc_id in enumerate(ids):
            self.label_of[doc_id] = start + offset
        self.ids.extend(ids)
        self.texts.extend(texts)
        self.titles.extend(titles)
        self.parents.extend(parents)
        return np.arange(start, start + n, dtype=np.int64)

    def labels_for(self, ids: Sequence[str]) -> np.ndarray:
        """Labels of existing ids; unknown ids are refused, all named in one line."""
        ids = [str(i) for i in ids]
        unknown = [i for i in ids if i not in self.label_of]
        if unknown:
            raise IndexError_(f"ids not in the index: {_some(unknown)}")
        return np.array([self.label_of[i] for i in ids], dtype=np.int64)

    def forget(self, labels: np.ndarray) -> None:
        for label in labels.tolist():
            doc_id = self.ids[label]
            if doc_id is not None:
                del self.label_of[doc_id]
            self.ids[label] = self.texts[label] = self.titles[label] = self.parents[label] = None

    def live_labels(self) -> np.ndarray:
        return np.fromiter(self.label_of.values(), dtype=np.int64, count=len(self.label_of))

    def write(self, out) -> None:
        """JSON lines into ``out`` (a binary writer, :class:`embedkit.index.storage.NewFile`), in ~1 MB blocks."""
        lines: list[str] = []
        size = 0
        for doc_id, text, title, parent in zip(self.ids, self.texts, self.titles, self.parents):
            if doc_id is None:
                line = "null"
            else:  # the bytes json.dumps(row, ensure_ascii=False) gives, without building a dict and an encoder
                line = '{"id": ' + _quote(doc_id)  # per row (that took most of a save's time)
                if text is not None:
                    line += ', "text": ' + _quote(text)
                if title is not None:
                    line += ', "title": ' + _quote(title)
                if parent is not None:
                    line += ', "parent": ' + _quote(parent)
                line += "}"
            lines.append(line)
            size += len(line)
            if size >= 1 << 20:
                out.write(("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"))
                lines, size = [], 0
        if lines:
            out.write(("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"))

    @classmethod
    def read(cls, path: str | Path, shown: Path | None = None) -> "DocStore":
        """Read a document table; errors name ``shown`` (the folder's file name when ``path`` is a pinned
        ``/proc/self/fd`` path) and the line."""
        store = cls()
        shown = shown or path
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    row = json.loads(raw.decode("utf-8", "surrogatepass"))
                    if row is not None:
                        doc_id = row["id"]
                        if not isinstance(doc_id, str) or not doc_id:
                            raise ValueError(f"id must be a non-empty string, got {doc_id!r}")
                        if doc_id in store.label_of:
                            raise ValueError(f"duplicate id {doc_id!r}")
                        for key in ("text", "title", "parent"):
                            if row.get(key) is not None and not isinstance(row[key], str):
                                raise ValueError(f"field {key!r} must be a string")
                        store.label_of[doc_id] = lineno - 1
                        store.ids.append(doc_id)
                        store.texts.append(row.get("text"))
                        store.titles.append(row.get("title"))
                        store.parents.append(row.get("parent"))
                        continue
                except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                    raise IndexError_(f"{shown}, line {lineno}: corrupt document row ({one_line(exc)})") from None
                store.ids.append(None)
                store.texts.append(None)
                store.titles.append(None)
                store.parents.append(None)
        return store


def _some(ids: list[str], shown: int = 5) -> str:
    head = ", ".join(repr(i) for i in ids[:shown])
    return head + (f" and {len(ids) - shown} more" if len(ids) > shown else "")
