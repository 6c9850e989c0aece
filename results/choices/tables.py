"""Tables of the defaults chosen on dev sets (``benchmarks/dev_choices.py``)."""
from __future__ import annotations

from pathlib import Path

from embedkit.records import fmt, load_record

HERE = Path(__file__).resolve().parent


def hnsw_efsearch() -> str:
    record = load_record(HERE / "hnsw-efsearch-dev.json")
    m = record["metrics"]
    rows = [f"| efSearch | recall@10 against exact | SciFact {m['split']} nDCG@10 (k = 10) |", "|---|---|---|"]
    for row in m["rows"]:
        chosen = row["efSearch"] == m["chosen_efSearch"]
        ef = f"**{row['efSearch']}** (chosen)" if chosen else str(row["efSearch"])
        rows.append(f"| {ef} | {fmt(row['recall@10_vs_exact'], 3)} | {fmt(row['ndcg@10'])} |")
    return "\n".join(rows)


def token_limit() -> str:
    record = load_record(HERE / "onnx-int8-token-limit-dev.json")
    m = record["metrics"]
    rows = [f"| backend | token limit | STS-B {m['split']} Spearman | SciFact {m['split']} nDCG@10 |", "|---|---|---|---|"]
    for row in m["rows"]:
        limit = row["max_seq_length"]
        label = f"**{limit}** (chosen)" if limit == m["chosen_max_seq_length"] else str(limit)
        rows.append(f"| `{row['backend']}` | {label} | {fmt(row['stsb_spearman'])} | {fmt(row['scifact_ndcg@10'])} |")
    return "\n".join(rows)


TABLES = {"choices-hnsw-efsearch": hnsw_efsearch, "choices-onnx-int8-token-limit": token_limit}
