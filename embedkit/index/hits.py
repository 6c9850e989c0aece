"""What searches return: one ``Hit`` per retrieved vector, and ``tune``'s report."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


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
