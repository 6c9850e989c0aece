"""The recipe's own evaluation: before training, every ``eval.steps`` during it, and after it.

Scoring is ``embedkit.evaluation`` (mteb underneath); this module only loads the sets (before any
model, so bad files fail early), optionally cuts a BEIR set down for speed, and adapts the whole to
sentence-transformers' evaluator interface for the trainer.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace

from sentence_transformers.base.evaluation import BaseEvaluator

from embedkit.paths import resolve_data_path
from embedkit.training.recipe import EvalSet, EvalSpec

HEADLINE = {"sts": "spearman", "beir": "ndcg@10"}


@dataclass(frozen=True)
class LoadedEvalSet:
    spec: EvalSet
    dataset: object  # STSDataset or BEIRDataset

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def headline(self) -> str:
        return HEADLINE[self.spec.kind]


def load_eval_sets(spec: EvalSpec, seed: int = 0) -> list[LoadedEvalSet]:
    from embedkit import data

    loaded = []
    for item in spec.active_sets():
        path = resolve_data_path(item.path)
        if item.kind == "sts":
            dataset = data.load_sts(path, split=item.split)
        else:
            dataset = subset_beir(data.load_beir(path, split=item.split), item.max_queries, item.max_documents, seed)
        loaded.append(LoadedEvalSet(item, dataset))
    return loaded


def subset_beir(dataset, max_queries: int | None, max_documents: int | None, seed: int = 0):
    """A seeded sample of ``max_queries`` queries, and a corpus of their judged documents topped up with
    other documents (seeded) to ``max_documents``. Scores on a cut corpus are higher than on the full one:
    use it to follow training, not to report results."""
    if not max_queries and not max_documents:
        return dataset
    rng = random.Random(seed)
    query_ids = list(dataset.queries)
    if max_queries and max_queries < len(query_ids):
        query_ids = sorted(rng.sample(query_ids, max_queries), key=list(dataset.queries).index)
    queries = {q: dataset.queries[q] for q in query_ids}
    qrels = {q: dataset.qrels[q] for q in query_ids if q in dataset.qrels}
    corpus = dataset.corpus
    if max_documents and max_documents < len(corpus):
        judged = {d for docs in qrels.values() for d in docs if d in corpus}
        others = [d for d in corpus if d not in judged]
        keep = judged | set(rng.sample(others, max(0, min(len(others), max_documents - len(judged)))))
        corpus = {d: doc for d, doc in corpus.items() if d in keep}
    return replace(dataset, queries=queries, qrels=qrels, corpus=corpus)


def evaluate_sets(model, sets: list[LoadedEvalSet], batch_size: int = 64, show_progress: bool = True) -> dict:
    """``{set name: metrics}`` (x100, as ``embedkit.evaluation`` reports them)."""
    from embedkit.evaluation import evaluate_retrieval, evaluate_sts

    results = {}
    for item in sets:
        if item.spec.kind == "sts":
            metrics = evaluate_sts(model, item.dataset, split=item.spec.split, batch_size=batch_size,
                                   show_progress=show_progress)
        else:
            metrics = evaluate_retrieval(model, item.dataset, batch_size=batch_size, show_progress=show_progress)
        results[item.name] = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    return results


class RecipeEvaluator(BaseEvaluator):
    """The recipe's ``during`` sets as one trainer evaluator; the first set's headline metric is primary.

    Evaluates at ``max_seq_length`` (the inference length), whatever length the model trains at.
    """

    def __init__(self, sets: list[LoadedEvalSet], batch_size: int, max_seq_length: int):
        super().__init__()
        self.sets, self.batch_size, self.max_seq_length = sets, batch_size, max_seq_length
        self.primary_metric = f"{sets[0].name}_{sets[0].headline}"

    def __call__(self, model, output_path=None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
        training_length, model.max_seq_length = model.max_seq_length, self.max_seq_length
        try:
            results = evaluate_sets(model, self.sets, self.batch_size, show_progress=False)
        finally:
            model.max_seq_length = training_length
        return {f"{name}_{key}": value for name, metrics in results.items() for key, value in metrics.items()
                if key in ("spearman", "pearson", "ndcg@10", "recall@100")}
