"""Dense + BM25 retrieval fused with reciprocal rank fusion.

BM25 (67.89 nDCG@10 on SciFact, published) beats all-MiniLM-L6-v2 (64.51) on that collection; the two
err on different documents (exact terms versus paraphrase), which is what rank fusion exploits.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from embedkit.index.bm25 import BM25Index
from embedkit.index.faiss_index import FaissIndex
from embedkit.index.fusion import reciprocal_rank_fusion
from embedkit.index.hits import Hit


class HybridSearcher:
    """Search ``dense`` and ``bm25`` to ``depth`` each, fuse document rankings with RRF (``rrf_k``)."""

    def __init__(self, dense: FaissIndex, bm25: BM25Index, model=None, depth: int = 100, rrf_k: int = 60,
                 weights: tuple[float, float] = (1.0, 1.0), query_prompt: str | None = None):
        self.dense, self.bm25, self.model = dense, bm25, model
        self.depth, self.rrf_k, self.weights, self.query_prompt = depth, rrf_k, weights, query_prompt

    def search(self, queries: Sequence[str], k: int = 10, query_vectors: np.ndarray | None = None) -> list[list[Hit]]:
        """Fused top-``k`` documents per query; ``query_vectors`` skips encoding (must match ``queries``)."""
        queries = list(queries)
        if query_vectors is None:
            from embedkit.encoding import encode

            if self.model is None:
                raise ValueError("HybridSearcher needs a model or query_vectors")
            query_vectors = encode(self.model, queries, role="query", prompt=self.query_prompt, show_progress=False)
        depth = max(self.depth, k)
        dense_hits = self.dense.search(query_vectors, depth, by_parent=True)
        sparse_hits = self.bm25.search(queries, depth)
        out = []
        for dense_row, sparse_row in zip(dense_hits, sparse_hits):
            best_chunk = {h.document_id: h for h in dense_row}
            fused = reciprocal_rank_fusion([[(h.document_id, h.score) for h in dense_row],
                                            [(h.id, h.score) for h in sparse_row]], k=self.rrf_k, weights=self.weights)
            row = []
            for doc_id, score in fused[:k]:
                chunk = best_chunk.get(doc_id)
                row.append(Hit(doc_id, score, chunk.text if chunk else None, chunk.title if chunk else None, None))
            out.append(row)
        return out
