"""Evaluation through mteb's evaluators on local data: STS and BEIR retrieval, with the embedding cache."""
from embedkit.evaluation.retrieval import evaluate_retrieval
from embedkit.evaluation.sts import evaluate_sts

__all__ = ["evaluate_retrieval", "evaluate_sts"]
