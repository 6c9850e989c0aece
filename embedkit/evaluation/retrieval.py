"""BEIR retrieval evaluation: nDCG@10, MRR@10, MAP@10, Recall@10, Recall@100 (x100), scored by mteb."""
from __future__ import annotations

from embedkit.data.records import BEIRDataset
from embedkit.evaluation.encoder import MtebEncoder
from embedkit.evaluation.tasks import retrieval_task

METRICS = {"ndcg@10": "ndcg_at_10", "mrr@10": "mrr_at_10", "map@10": "map_at_10", "recall@10": "recall_at_10",
           "recall@100": "recall_at_100"}


def evaluate_retrieval(model, dataset: BEIRDataset, *, batch_size: int = 32, device: str | None = None,
                       query_prompt: str | None = None, document_prompt: str | None = None,
                       show_progress: bool = True) -> dict:
    """Exact (brute-force cosine) retrieval over the whole corpus through mteb's retrieval evaluator."""
    encoder = MtebEncoder(model, batch_size=batch_size, device=device, query_prompt=query_prompt,
                          document_prompt=document_prompt, show_progress=show_progress)
    task = retrieval_task(dataset)
    scores = task.evaluate(encoder, dataset.split, encode_kwargs={"batch_size": batch_size})["default"]
    result = {key: 100 * scores[name] for key, name in METRICS.items()}
    result["n_queries"] = len(dataset.queries)
    return result
