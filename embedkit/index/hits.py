"""What searches return: one ``Hit`` per retrieved vector, and ``tune``'s report."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import NamedTuple

import numpy as np


class Hit(NamedTuple):
    """One search result. ``score`` is higher-is-better for every metric.

    For ``cosine`` and ``ip`` it is the inner product; for ``l2`` it is the negated squared L2 distance;
    for BM25 and fused results it is that method's score. ``parent_id`` names the source document when
    the hit is a chunk of a longer document, else None. A NamedTuple rather than a dataclass because a
    batch search builds thousands of them and tuple construction keeps the layer's overhead small.
    """

    id: str
    score: float
    text: str | None = None
    title: str | None = None
    parent_id: str | None = None

    @property
    def document_id(self) -> str:
        """The id of the whole document this hit belongs to (the parent for a chunk, else the id)."""
        return self.parent_id if self.parent_id is not None else self.id

    def as_dict(self) -> dict:
        return {"id": self.id, "score": self.score, "title": self.title, "text": self.text,
                "parent_id": self.parent_id}


class SearchResults(Sequence):
    """The hit lists of one batch search, one per query, each a plain ``list[Hit]`` built on first access.

    Why lazy: a batch of 1,000 queries at k=10 makes 10,000 ``Hit`` objects, and for fast specs
    (IVF-PQ) building them all costs about a fifth of the FAISS search itself (benchmarks/README.md). Keeping the label and
    score arrays and building a query's hits when it is read keeps the layer's batch overhead small;
    a caller who reads every row pays the same as an eager list. Compares equal to a list of lists.
    """

    def __init__(self, scores: np.ndarray, labels: np.ndarray, columns: tuple):
        # columns: object arrays (ids, texts, titles, parents), None for a column never set; FAISS pads a
        # short row with label -1 at its end, which _build drops
        self._scores, self._labels, self._columns = scores, labels, columns
        self._rows: list[list[Hit] | None] = [None] * len(labels)

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        row = self._rows[i]
        if row is None:
            row = self._rows[i] = self._build(i)
        return row

    def _build(self, i: int) -> list[Hit]:
        ids = self._columns[0]
        labels = self._labels[i]
        labels = labels[labels >= 0]
        fields = [ids[labels].tolist(), self._scores[i, :len(labels)].tolist()]
        fields += [c[labels].tolist() if c is not None else repeat(None) for c in self._columns[1:]]
        return list(map(tuple.__new__, repeat(Hit), zip(*fields)))  # skips NamedTuple's Python __new__

    def __eq__(self, other) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented

    def __repr__(self) -> str:
        return f"SearchResults({list(self)!r})"


@dataclass(frozen=True)
class TunePoint:
    value: int
    recall: float
    qps: float


@dataclass(frozen=True)
class TuneResult:
    """The outcome of ``FaissIndex.tune``: the chosen setting, whether it met the target, and the curve."""

    param: str | None
    value: int | None
    recall: float
    target_recall: float
    reached: bool
    k: int
    queries: int
    message: str
    curve: list[TunePoint] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"param": self.param, "value": self.value, "recall": self.recall, "target_recall": self.target_recall,
                "reached": self.reached, "k": self.k, "queries": self.queries, "message": self.message,
                "curve": [vars(p) for p in self.curve]}
