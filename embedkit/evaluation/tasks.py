"""Local data as mteb tasks: a task is the loaded data plus metadata, its revision a hash of the data.

The revision matters: mteb's result cache keys on (task name, revision), and a fixed revision would
return a cached score after the local files changed (see shared/notes/mteb-offline.md).
"""
from __future__ import annotations

import hashlib
import re

from embedkit.data.records import BEIRDataset, STSDataset
from embedkit.evaluation._mteb import import_mteb


def _content_hash(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:16]


def _task_name(name: str) -> str:
    return "embedkit-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


def _metadata(name: str, task_type: str, split: str, revision: str, main_score: str):
    mteb = import_mteb()
    return mteb.TaskMetadata(
        name=name, description=f"Local {task_type} data loaded by embedkit.", type=task_type, category="t2t",
        reference=None, dataset={"path": f"local/{name}", "revision": revision}, eval_splits=[split],
        eval_langs=["eng-Latn"], main_score=main_score, date=None, domains=None, task_subtypes=None, license=None,
        annotations_creators=None, dialect=None, sample_creation=None, bibtex_citation="",
    )


def sts_task(dataset: STSDataset, split: str = "test", subset: str | None = None):
    """An mteb STS task over ``dataset`` (or one of its SentEval subsets)."""
    from datasets import Dataset

    import_mteb()
    from mteb.abstasks.sts import AbsTaskSTS

    pairs = dataset.subsets[subset] if subset is not None else dataset.pairs
    rows = {"sentence1": [p.sentence1 for p in pairs], "sentence2": [p.sentence2 for p in pairs],
            "score": [float(p.score) for p in pairs]}
    name = _task_name(dataset.name + (f"-{subset}" if subset else ""))
    revision = _content_hash(rows["sentence1"], rows["sentence2"], rows["score"])
    scores = rows["score"]

    class LocalSTSTask(AbsTaskSTS):
        metadata = _metadata(name, "STS", split, revision, "cosine_spearman")
        # correlations are rank/scale invariant, so the range only feeds mteb's score normalisation
        min_score = min(scores)
        max_score = max(scores)

        def load_data(self, **kwargs):
            self.dataset = {"default": {split: Dataset.from_dict(rows)}}
            self.data_loaded = True

    return LocalSTSTask()


def retrieval_task(dataset: BEIRDataset):
    """An mteb retrieval task over a loaded BEIR dataset (corpus, the split's queries, qrels)."""
    from datasets import Dataset

    import_mteb()
    from mteb.abstasks.retrieval import AbsTaskRetrieval

    split = dataset.split
    docs = list(dataset.corpus.values())
    corpus = {"id": [d.id for d in docs], "title": [d.title for d in docs], "text": [d.text for d in docs]}
    queries = {"id": list(dataset.queries), "text": list(dataset.queries.values())}
    qrels = {q: dict(rel) for q, rel in dataset.qrels.items()}
    name = _task_name(f"{dataset.name}-{split}")
    revision = _content_hash(corpus["id"], corpus["title"], corpus["text"], queries, sorted(
        (q, sorted(r.items())) for q, r in qrels.items()))

    class LocalRetrievalTask(AbsTaskRetrieval):
        metadata = _metadata(name, "Retrieval", split, revision, "ndcg_at_10")

        def load_data(self, **kwargs):
            self.dataset = {"default": {split: {
                "corpus": Dataset.from_dict(corpus), "queries": Dataset.from_dict(queries),
                "relevant_docs": qrels, "top_ranked": None}}}
            self.data_loaded = True

    return LocalRetrievalTask()
