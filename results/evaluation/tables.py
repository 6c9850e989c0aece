"""Tables of the harness's reference records (``evaluation/record_eval.py --prefix reference``)."""
from __future__ import annotations

from pathlib import Path

from embedkit.records import fmt, load_record

HERE = Path(__file__).resolve().parent
LABELS = {"spearman": "Spearman x100", "ndcg@10": "nDCG@10 x100", "recall@100": "Recall@100 x100"}


def reference() -> str:
    """The default model against its published scores."""
    rows = ["| task | metric | embedkit | published | command |", "|---|---|---|---|---|"]
    for name, task, command in (("stsb-test", "STS-B test", "`embedkit eval sts --data stsb --split test`"),
                                ("scifact-test", "SciFact test", "`embedkit eval retrieval --data scifact --split test`")):
        record = load_record(HERE / f"reference-{name}.json")
        for metric, published in record["details"]["published"].items():
            rows.append(f"| {task} | {LABELS[metric]} | {fmt(record['metrics'][metric])} | {fmt(published)} | {command} |")
            command = "same command"
    return "\n".join(rows)


def search() -> str:
    """SciFact test nDCG@10 of the default model through each kind of search."""
    rows = ["| search (`--index`) | SciFact test nDCG@10 x100 | published |", "|---|---|---|"]
    for name, label in (("scifact-test", "exact (mteb)"), ("scifact-test-bm25", "`bm25` (bm25s)"),
                        ("scifact-test-hybrid", "`hybrid`: dense + BM25, reciprocal rank fusion")):
        record = load_record(HERE / f"reference-{name}.json")
        published = record["details"].get("published", {}).get("ndcg@10")
        rows.append(f"| {label} | {fmt(record['metrics']['ndcg@10'])} | {fmt(published)} |")
    return "\n".join(rows)


TABLES = {"evaluation-reference": reference, "evaluation-search": search}
