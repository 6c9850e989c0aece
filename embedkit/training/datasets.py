"""Recipe data -> the column layout each loss family trains on, as a ``datasets.Dataset``.

Columns are positional for sentence-transformers losses (``score`` is the label column):

    sentences      anchor, positive           (the same sentence twice: SimCSE's dropout views)
    pairs          anchor, positive
    triplets, nli  anchor, positive, negative
    sts            sentence1, sentence2, score
    beir           query, positive[, negative_1 .. negative_k]   (one row per judged-relevant document)

Loading here is the only data I/O before training, so a malformed file fails before a model is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass

from embedkit.errors import DataError
from embedkit.training.recipe import DataSpec


@dataclass
class TrainingData:
    columns: dict[str, list]  # column name -> values; a ``Dataset`` is built once mining (if any) is done
    beir: object | None = None  # the BEIRDataset for kind beir, which mining needs


def load_training_data(spec: DataSpec) -> TrainingData:
    """Read and check the training data (``data.limit`` applied)."""
    from embedkit import data

    path = spec.resolved_path()
    beir = None
    if spec.kind == "sentences":
        sentences = data.load_sentences(path)[: spec.limit]
        columns = {"anchor": sentences, "positive": list(sentences)}
    elif spec.kind == "pairs":
        pairs = data.load_pairs(path)[: spec.limit]
        columns = {"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]}
    elif spec.kind in ("triplets", "nli"):
        triplets = data.load_triplets(path)[: spec.limit]
        columns = {"anchor": [t.anchor for t in triplets], "positive": [t.positive for t in triplets]}
        if any(t.negative is not None for t in triplets):
            missing = next((i for i, t in enumerate(triplets) if t.negative is None), None)
            if missing is not None:
                raise DataError(f"example {missing + 1} has no negative while others do", path=path)
            columns["negative"] = [t.negative for t in triplets]
    elif spec.kind == "sts":
        pairs = data.load_sts(path, split=spec.split).pairs[: spec.limit]
        columns = {"sentence1": [p.sentence1 for p in pairs], "sentence2": [p.sentence2 for p in pairs],
                   "score": [float(p.score) for p in pairs]}
    else:  # beir: (query, relevant document) pairs of the split; hard negatives are added after mining
        beir = dataset = data.load_beir(path, split=spec.split)
        pairs = relevant_pairs(dataset)[: spec.limit]
        columns = {"query_id": [q for q, _ in pairs], "document_id": [d for _, d in pairs]}
        columns["query"] = [dataset.queries[q] for q, _ in pairs]
        columns["positive"] = [document_text(dataset.corpus[d]) for _, d in pairs]
    if not next(iter(columns.values())):
        raise DataError(f"no training examples (kind {spec.kind})", path=path)
    return TrainingData(columns, beir)


def relevant_pairs(dataset) -> list[tuple[str, str]]:
    """(query id, document id) for every qrel with relevance > 0, in qrels order."""
    return [(qid, did) for qid, docs in dataset.qrels.items() for did, rel in docs.items()
            if rel > 0 and did in dataset.corpus and qid in dataset.queries]


def document_text(doc) -> str:
    """Title and text joined by a space, as BEIR and mteb encode documents."""
    return f"{doc.title} {doc.text}".strip() if doc.title else doc.text


def to_dataset(columns: dict[str, list]):
    """A ``datasets.Dataset`` of the columns the loss reads (bookkeeping ids dropped)."""
    from datasets import Dataset

    return Dataset.from_dict({k: v for k, v in columns.items() if k not in ("query_id", "document_id")})
