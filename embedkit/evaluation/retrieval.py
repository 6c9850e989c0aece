"""BEIR retrieval evaluation: nDCG@10, MRR@10, MAP@10, Recall@10, Recall@100 (x100), scored by mteb."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from embedkit.data.records import BEIRDataset
from embedkit.evaluation._mteb import QUIET_ENCODE_KWARGS, no_datasets_bars
from embedkit.evaluation.encoder import MtebEncoder
from embedkit.evaluation.search import IndexSearch
from embedkit.evaluation.tasks import retrieval_task

METRICS = {"ndcg@10": "ndcg_at_10", "mrr@10": "mrr_at_10", "map@10": "map_at_10", "recall@10": "recall_at_10",
           "recall@100": "recall_at_100"}


def evaluate_retrieval(model, dataset: BEIRDataset, *, batch_size: int = 32, device: str | None = None,
                       query_prompt: str | None = None, document_prompt: str | None = None,
                       index: str | None = None, tune_recall: float | None = None,
                       show_progress: bool = True, document_embeddings: Mapping[str, np.ndarray] | None = None) -> dict:
    """Retrieval over the whole corpus, scored by mteb's retrieval evaluator.

    ``index=None`` is mteb's exact brute-force cosine search. Otherwise ``index`` is a FAISS spec,
    ``bm25`` or ``hybrid`` (see :class:`embedkit.evaluation.search.IndexSearch`); a FAISS spec adds
    ``recall@10_vs_exact`` (x100), and ``tune_recall`` tunes the spec's search parameter first.
    ``document_embeddings``: embeddings of document texts made elsewhere (see :class:`MtebEncoder`).
    """
    encoder = MtebEncoder(model, batch_size=batch_size, device=device, query_prompt=query_prompt,
                          document_prompt=document_prompt, show_progress=show_progress, documents=document_embeddings)
    searcher = IndexSearch(encoder, index, tune_recall=tune_recall) if index is not None else encoder
    task = retrieval_task(dataset)
    with no_datasets_bars():
        scores = task.evaluate(searcher, dataset.split,
                               encode_kwargs={"batch_size": batch_size, **QUIET_ENCODE_KWARGS})["default"]
    result = {key: 100 * scores[name] for key, name in METRICS.items()}
    result["n_queries"] = len(dataset.queries)
    if index is not None:
        result["index"] = index
        if searcher.recall_vs_exact is not None:
            result["recall@10_vs_exact"] = 100 * searcher.recall_vs_exact
        if searcher.tuned is not None:
            result["tuned"] = {k: searcher.tuned[k] for k in ("param", "value", "recall", "reached")}
    return result
