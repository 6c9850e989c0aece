"""Retrieval evaluation through the index layer: an mteb ``SearchProtocol`` over FAISS, BM25 or both.

mteb's default search is exact brute force. Users search with an approximate index, BM25, or a
hybrid of both, so ``eval retrieval --index SPEC`` scores exactly what they will get: the corpus is
encoded through the embedding cache, indexed with :class:`embedkit.index.FaissIndex` (or
:class:`BM25Index`, or fused by :class:`HybridSearcher`), and mteb's evaluator scores the ranking.
"""
from __future__ import annotations

import numpy as np

from embedkit.evaluation.encoder import MtebEncoder

SPARSE = ("bm25", "hybrid")
# mteb asks for its largest cutoff (1000); the reported metrics stop at 100, and FAISS's HNSW widens its
# beam to k, so searching 1000 deep would hide exactly the approximation a user gets at k=10..100.
MAX_DEPTH = 100


class IndexSearch:
    """``kind`` is a FAISS ``index_factory`` spec (``Flat``, ``HNSW32``, ``IVF256,PQ16``, ...), ``bm25`` or ``hybrid``.

    ``tune_recall`` tunes ``nprobe``/``efSearch`` on the task's queries to that recall@10 against exact
    search before scoring. ``recall_vs_exact`` holds recall@10 of the dense search against exact search.
    """

    def __init__(self, encoder: MtebEncoder, kind: str = "Flat", tune_recall: float | None = None,
                 hybrid_spec: str = "Flat"):
        self.encoder = encoder
        self.kind = kind
        self.tune_recall = tune_recall
        self.hybrid_spec = hybrid_spec
        self.mteb_model_meta = encoder.mteb_model_meta
        self.recall_vs_exact: float | None = None
        self.tuned: dict | None = None

    def _encode(self, dataset, role: str, task_metadata, hf_split, hf_subset, encode_kwargs) -> np.ndarray:
        from mteb._create_dataloaders import create_dataloader
        from mteb.types import PromptType

        prompt_type = PromptType.query if role == "query" else PromptType.document
        loader = create_dataloader(dataset, task_metadata=task_metadata, prompt_type=prompt_type,
                                   batch_size=encode_kwargs.get("batch_size", self.encoder.batch_size))
        return self.encoder.encode(loader, task_metadata=task_metadata, hf_split=hf_split, hf_subset=hf_subset,
                                   prompt_type=prompt_type)

    def index(self, corpus, *, task_metadata, hf_split, hf_subset, encode_kwargs, num_proc=None, **kwargs) -> None:
        from embedkit.data import full_text
        from embedkit.index import BM25Index, FaissIndex

        self.ids = list(corpus["id"])
        titles = corpus["title"] if "title" in corpus.column_names else [""] * len(self.ids)
        if self.kind != "bm25":
            self.vectors = self._encode(corpus, "document", task_metadata, hf_split, hf_subset, encode_kwargs)
            spec = self.hybrid_spec if self.kind == "hybrid" else self.kind
            self.dense = FaissIndex(self.vectors.shape[1], spec=spec, metric="cosine")
            self.dense.add(self.ids, self.vectors)
        if self.kind in SPARSE:
            self.bm25 = BM25Index()
            self.bm25.index(self.ids, [full_text(t, x) for t, x in zip(titles, corpus["text"])])

    def search(self, queries, *, task_metadata, hf_split, hf_subset, top_k, encode_kwargs, top_ranked=None,
               num_proc=None, **kwargs) -> dict[str, dict[str, float]]:
        from embedkit.index import HybridSearcher

        qids, texts = list(queries["id"]), list(queries["text"])
        top_k = min(top_k, MAX_DEPTH)
        if self.kind == "bm25":
            hits = self.bm25.search(texts, top_k)
        else:
            qvec = self._encode(queries, "query", task_metadata, hf_split, hf_subset, encode_kwargs)
            if self.tune_recall is not None and self.kind != "hybrid":
                self.tuned = self.dense.tune(qvec, target_recall=self.tune_recall).as_dict()
            if self.kind == "hybrid":
                hits = HybridSearcher(self.dense, self.bm25, depth=top_k).search(texts, top_k, query_vectors=qvec)
            else:
                hits = self.dense.search(qvec, top_k)
                self.recall_vs_exact = self._recall_vs_exact(qvec)
        return {qid: {h.id: float(h.score) for h in row} for qid, row in zip(qids, hits)}

    def _recall_vs_exact(self, qvec: np.ndarray, k: int = 10) -> float:
        """Recall@k of a k-deep search (what a user asking for k hits gets) against exact search."""
        from embedkit.index import FaissIndex

        exact = FaissIndex(self.vectors.shape[1], spec="Flat", metric="cosine")
        exact.add(self.ids, self.vectors)
        pairs = zip(self.dense.search(qvec, k), exact.search(qvec, k))
        return float(np.mean([len({h.id for h in row} & {h.id for h in ref}) / max(1, len(ref)) for row, ref in pairs]))
