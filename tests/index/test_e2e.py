"""End to end on a SciFact subset with the real default model: build, tune, search, hybrid, CLI."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e


def test_scifact_subset(shared_data, tmp_path, capsys):
    from embedkit.cli.main import main
    from embedkit.data import load_beir
    from embedkit.index import BM25Index, FaissIndex, HybridSearcher

    data = load_beir(shared_data / "scifact", split="test")
    queries = list(data.queries.items())[:30]
    wanted = {d for q, _ in queries for d in data.qrels[q]}
    others = [d for d in data.corpus if d not in wanted][:250 - len(wanted)]
    subset = [data.corpus[d] for d in sorted(wanted) + others]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": d.id, "title": d.title, "text": d.text}) + "\n" for d in subset))
    queries_file = tmp_path / "queries.txt"
    queries_file.write_text("".join(text + "\n" for _, text in queries))
    out = tmp_path / "ix"

    assert main(["index", "build", "--corpus", str(corpus), "--out", str(out), "--spec", "HNSW32",
                 "--chunk-tokens", "256", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["count"] >= len(subset)
    assert main(["index", "tune", str(out), "--queries", str(queries_file), "--json"]) == 0
    tuned = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert tuned["reached"] and tuned["recall"] >= 0.95

    index = FaissIndex.load(out, verify=True)
    assert index.model_source == "default" and index.info()["search_params"]["efSearch"] == tuned["value"]
    from embedkit.encoding import encode
    from embedkit.models import load_model

    model = load_model()
    vectors = encode(model, [t for _, t in queries], role="query")
    dense = index.search(vectors, 10, by_parent=True)
    hybrid = HybridSearcher(index, BM25Index.load(out), model).search([t for _, t in queries], 10, vectors)

    def hit_rate(rows):
        return sum(any(h.document_id in data.qrels[q] for h in row) for (q, _), row in zip(queries, rows)) / len(rows)

    assert hit_rate(dense) >= 0.7 and hit_rate(hybrid) >= hit_rate(dense) - 0.05
    assert main(["index", "search", str(out), "--query", queries[0][1], "--mode", "hybrid", "-k", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out.strip())["hits"]) == 3
