"""Hard-negative mining with the index layer: for each (query, relevant document) pair of a BEIR split,
documents the model ranks high for the query but that are not labelled relevant to it.

The rank window (``10:60`` by default) skips the very top of the ranking on purpose: in sparsely judged
collections such as SciFact, the top few unlabelled documents are often relevant but unjudged (false
negatives), and training against them hurts (Qu et al. 2021, RocketQA; Moreira et al. 2024, NV-Retriever).
Ranks count only documents not labelled relevant, 0-based, end exclusive.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from embedkit.atomic import atomic_open
from embedkit.errors import DataError
from embedkit.training.datasets import document_text, relevant_pairs


@dataclass(frozen=True)
class MinedExample:
    query_id: str
    query: str
    positive_id: str
    positive: str
    negative_ids: list[str]
    negatives: list[str]


def mine_hard_negatives(model, dataset, *, window: tuple[int, int] = (10, 60), num_negatives: int = 1,
                        sampling: str = "random", seed: int = 0, batch_size: int = 64, index_spec: str = "Flat",
                        query_prompt: str | None = None, document_prompt: str | None = None,
                        show_progress: bool = True) -> list[MinedExample]:
    """One row per (query, judged-relevant document) of ``dataset`` (a ``BEIRDataset``), with
    ``num_negatives`` documents from ranks ``window`` of the query's ranking, never a document labelled
    relevant (relevance > 0) to that query. ``sampling``: ``top`` takes the window's first documents,
    ``random`` draws them from the whole window (seeded). Queries whose window holds fewer than
    ``num_negatives`` documents are left out."""
    from embedkit.encoding import cached_encode
    from embedkit.index import FaissIndex

    start, end = window
    pairs = relevant_pairs(dataset)
    doc_ids = list(dataset.corpus)
    show = None if show_progress else False  # None: a bar only for a long encode
    # The texts, order and prompt of the evaluation's encode (``full_text`` is what mteb embeds), so a corpus
    # that was evaluated is read from the embedding cache, not encoded again.
    doc_vectors = cached_encode(model, [dataset.corpus[d].full_text for d in doc_ids], role="document",
                                prompt=document_prompt, batch_size=batch_size, show_progress=show)
    index = FaissIndex(doc_vectors.shape[1], spec=index_spec, metric="cosine")
    index.add(doc_ids, doc_vectors)

    query_ids = list(dict.fromkeys(q for q, _ in pairs))
    query_vectors = cached_encode(model, [dataset.queries[q] for q in query_ids], role="query", prompt=query_prompt,
                                  batch_size=batch_size, show_progress=show)
    most_relevant = max((sum(rel > 0 for rel in dataset.qrels[q].values()) for q in query_ids), default=0)
    k = min(len(doc_ids), end + most_relevant)
    rankings = index.search(query_vectors, k)

    rng = random.Random(seed)
    examples = []
    for qid, hits in zip(query_ids, rankings):
        relevant = {d for d, rel in dataset.qrels[qid].items() if rel > 0}
        candidates = [hit.id for hit in hits if hit.id not in relevant][start:end]
        if len(candidates) < num_negatives:
            continue
        for pid in (d for q, d in pairs if q == qid):
            chosen = candidates[:num_negatives] if sampling == "top" else rng.sample(candidates, num_negatives)
            examples.append(MinedExample(qid, dataset.queries[qid], pid, document_text(dataset.corpus[pid]),
                                         chosen, [document_text(dataset.corpus[d]) for d in chosen]))
    return examples


def write_mined(examples: list[MinedExample], path: str | os.PathLike) -> Path:
    """JSON lines ``{query_id, query, positive_id, positive, negative_ids, negatives}``, written atomically."""
    with atomic_open(path, "w") as f:
        for example in examples:
            f.write(json.dumps(asdict(example), ensure_ascii=False) + "\n")
    return Path(path)


def read_mined(path: str | os.PathLike) -> list[MinedExample]:
    from embedkit.data.textio import iter_lines, parse_json_object

    path = Path(path)
    examples = []
    for line_number, line in iter_lines(path):
        if not line.strip():
            continue
        obj = parse_json_object(line, path, line_number)
        try:
            examples.append(MinedExample(**{k: obj[k] for k in MinedExample.__dataclass_fields__}))
        except KeyError as exc:
            raise DataError("missing field", path=path, line=line_number, field=exc.args[0]) from None
    return examples


def cached_mining(model, dataset, data_path: Path, *, window: tuple[int, int], num_negatives: int, sampling: str,
                  seed: int, batch_size: int = 64) -> list[MinedExample]:
    """``mine_hard_negatives`` through a file cache in ``EMBEDKIT_CACHE/mined``, keyed by the model's weights,
    the data files (path, size, mtime) and every mining option, so a recipe re-run or resume mines once."""
    from embedkit.models import model_fingerprint
    from embedkit.paths import cache_dir

    files = sorted(p for p in Path(data_path).rglob("*") if p.is_file()) if Path(data_path).is_dir() else [Path(data_path)]
    stamp = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    key = hashlib.sha256(json.dumps([model_fingerprint(model), stamp, dataset.split, list(window), num_negatives,
                                     sampling, seed]).encode()).hexdigest()[:24]
    path = cache_dir() / "mined" / f"{key}.jsonl"
    if path.exists():
        return read_mined(path)
    examples = mine_hard_negatives(model, dataset, window=window, num_negatives=num_negatives, sampling=sampling,
                                   seed=seed, batch_size=batch_size)
    write_mined(examples, path)
    return examples


def mined_columns(examples: list[MinedExample]) -> dict[str, list]:
    """Training columns ``query, positive, negative_1 .. negative_k`` from mined rows."""
    k = len(examples[0].negatives) if examples else 0
    columns: dict[str, list] = {"query": [e.query for e in examples], "positive": [e.positive for e in examples]}
    for j in range(k):
        columns[f"negative_{j + 1}"] = [e.negatives[j] for e in examples]
    return columns
