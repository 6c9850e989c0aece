"""Keep the per-query (retrieval) and per-pair (STS) scores that mteb computes and then averages away.

A paired significance test needs them, and mteb 2.x neither returns nor saves them (its prediction
files hold rankings, not scores). Both task families have a hook that sees them, so the recorder
wraps the hook of one task instance; the scores mteb reports are unchanged:

- retrieval: ``task_specific_scores(scores, ...)`` receives pytrec_eval's per-query metrics;
- STS: ``_calculate_scores(scores, gold)`` receives the per-pair cosine similarities and the
  normalised gold scores (a private hook of mteb 2.x: if a later mteb drops it, nothing is recorded
  and reports simply show no significance marks).

Recorded groups are keyed ``"<split>/<subset>"``.
"""
from __future__ import annotations

import re

# mteb's retrieval score names -> pytrec_eval's per-query measure names
_PYTREC_MEASURES = {"ndcg_at_": "ndcg_cut_", "map_at_": "map_cut_", "recall_at_": "recall_",
                    "precision_at_": "P_", "hit_rate_at_": "success_"}


def pytrec_measure(main_score: str) -> str | None:
    """``ndcg_at_10`` -> ``ndcg_cut_10``; None for scores pytrec_eval does not give per query (MRR, ...)."""
    match = re.fullmatch(r"([a-z_]+_at_)(\d+)", main_score)
    if match and match.group(1) in _PYTREC_MEASURES:
        return _PYTREC_MEASURES[match.group(1)] + match.group(2)
    return None


class PerItemRecorder:
    """Attached once to a task instance; :meth:`reset` before each evaluation, read :attr:`groups` after.

    ``kind`` is ``"retrieval"``, ``"sts"``, or None when the task's main score has no per-item form.
    """

    def __init__(self, task):
        from mteb.abstasks.retrieval import AbsTaskRetrieval
        from mteb.abstasks.sts import AbsTaskSTS

        self.metric = task.metadata.main_score
        self.groups: dict[str, dict] = {}
        self.kind: str | None = None
        if isinstance(task, AbsTaskRetrieval) and pytrec_measure(self.metric):
            self.kind = "retrieval"
            self._wrap_retrieval(task, pytrec_measure(self.metric))
        elif (isinstance(task, AbsTaskSTS) and self.metric == "cosine_spearman"
              and hasattr(task, "_calculate_scores") and hasattr(task, "_evaluate_subset")):
            self.kind = "sts"
            self._wrap_sts(task)

    def reset(self) -> None:
        self.groups = {}

    def record(self) -> dict | None:
        """What to store beside a result: the kind, the metric and the groups; None if nothing was seen."""
        if self.kind is None or not self.groups:
            return None
        return {"kind": self.kind, "metric": self.metric, "groups": self.groups}

    def _wrap_retrieval(self, task, measure: str) -> None:
        original = task.task_specific_scores

        def task_specific_scores(scores, qrels, results, hf_split, hf_subset):
            self.groups[f"{hf_split}/{hf_subset}"] = {
                "scores": {qid: float(values[measure]) for qid, values in scores.items() if measure in values}}
            return original(scores, qrels, results, hf_split=hf_split, hf_subset=hf_subset)

        task.task_specific_scores = task_specific_scores

    def _wrap_sts(self, task) -> None:
        evaluate_subset, calculate_scores = task._evaluate_subset, task._calculate_scores
        current: list[str] = []

        def _evaluate_subset(model, data_split, *, hf_split, hf_subset, **kwargs):
            current[:] = [f"{hf_split}/{hf_subset}"]
            return evaluate_subset(model, data_split, hf_split=hf_split, hf_subset=hf_subset, **kwargs)

        def _calculate_scores(scores, normalized_scores):
            if current:
                self.groups[current[0]] = {"gold": [float(s) for s in normalized_scores],
                                           "predicted": [float(s) for s in scores["cosine_scores"]]}
            return calculate_scores(scores, normalized_scores)

        task._evaluate_subset = _evaluate_subset
        task._calculate_scores = _calculate_scores
