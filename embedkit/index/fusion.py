"""Reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009).

Each input ranking contributes ``weight / (k + rank)`` to a document's fused score, with ``rank``
starting at 1, so a document ranked high by either system rises, and the systems' raw scores (cosine
similarities, BM25 scores) never need to be put on one scale. ``k = 60`` is the paper's constant: it
damps the weight of the very first ranks so that agreement between systems matters more than any
single system's top hit.
"""
from __future__ import annotations

from typing import Sequence


def reciprocal_rank_fusion(rankings: Sequence[Sequence[tuple[str, float]]], k: int = 60,
                           weights: Sequence[float] | None = None) -> list[tuple[str, float]]:
    """Fuse several rankings of one query, each a best-first list of ``(doc_id, score)``.

    Returns ``(doc_id, fused_score)`` pairs, best first (ties keep first-seen order). Only the order of
    each input matters; its scores are ignored. A document listed twice in one ranking counts once,
    at its best rank.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights):
        seen: set[str] = set()
        for rank, (doc_id, _score) in enumerate(ranking, 1):
            if doc_id in seen:
                continue
            seen.add(doc_id)
            fused[doc_id] = fused.get(doc_id, 0.0) + weight / (k + rank)
    return sorted(fused.items(), key=lambda item: -item[1])
