"""Hard-negative mining: never a document labelled relevant, the rank window, the JSONL rows, the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from embedkit.cli.main import main as cli_main
from embedkit.data import load_beir
from embedkit.encoding import encode
from embedkit.training.datasets import document_text
from embedkit.training.mining import mine_hard_negatives, read_mined, write_mined
from helpers import write_beir

DOCS = {f"d{i}": (f"Topic {i}", f"Document number {i} talks about {w} and {v}.")
        for i, (w, v) in enumerate([(w, v) for w in ("cells", "proteins", "genes", "viruses", "drugs")
                                     for v in ("mice", "humans", "plants", "bacteria")])}
QUERIES = {"q1": "proteins in humans", "q2": "viruses infect bacteria", "q3": "drugs tested on mice"}
QRELS = [("q1", "d5"), ("q1", "d6"), ("q2", "d15"), ("q3", "d16")]


@pytest.fixture()
def beir_dir(tmp_path):
    return write_beir(tmp_path / "beir", docs=DOCS, queries=QUERIES, qrels=QRELS, split="train")


def brute_force_ranking(model, dataset, query_id) -> list[str]:
    ids = list(dataset.corpus)
    docs = encode(model, [document_text(dataset.corpus[d]) for d in ids], normalize=True)
    query = encode(model, [dataset.queries[query_id]], normalize=True)[0]
    return [ids[i] for i in np.argsort(-(docs @ query), kind="stable")]


def test_negatives_skip_relevant_documents_and_follow_the_window(tiny_model, beir_dir):
    dataset = load_beir(beir_dir, split="train")
    mined = mine_hard_negatives(tiny_model, dataset, window=(0, 3), num_negatives=3, sampling="top",
                                show_progress=False)
    assert [(m.query_id, m.positive_id) for m in mined] == QRELS
    for row in mined:
        relevant = set(dataset.qrels[row.query_id])
        assert not relevant & set(row.negative_ids)
        expected = [d for d in brute_force_ranking(tiny_model, dataset, row.query_id) if d not in relevant][:3]
        assert row.negative_ids == expected
        assert row.negatives == [document_text(dataset.corpus[d]) for d in row.negative_ids]
        assert row.positive == document_text(dataset.corpus[row.positive_id])


def test_random_sampling_draws_inside_the_window(tiny_model, beir_dir):
    dataset = load_beir(beir_dir, split="train")
    mined = mine_hard_negatives(tiny_model, dataset, window=(2, 8), num_negatives=2, sampling="random", seed=3,
                                show_progress=False)
    for row in mined:
        relevant = set(dataset.qrels[row.query_id])
        window = [d for d in brute_force_ranking(tiny_model, dataset, row.query_id) if d not in relevant][2:8]
        assert set(row.negative_ids) <= set(window) and len(set(row.negative_ids)) == 2


def test_queries_without_enough_candidates_are_left_out(tiny_model, beir_dir):
    dataset = load_beir(beir_dir, split="train")
    assert mine_hard_negatives(tiny_model, dataset, window=(18, 30), num_negatives=2, show_progress=False) == []


def test_jsonl_round_trip(tiny_model, beir_dir, tmp_path):
    dataset = load_beir(beir_dir, split="train")
    mined = mine_hard_negatives(tiny_model, dataset, window=(0, 4), num_negatives=2, show_progress=False)
    path = write_mined(mined, tmp_path / "mined.jsonl")
    assert read_mined(path) == mined


def test_mine_cli_writes_rows(tiny_model_dir, beir_dir, tmp_path, capsys):
    out = tmp_path / "neg.jsonl"
    code = cli_main(["mine", "--model", str(tiny_model_dir), "--data", str(beir_dir), "--split", "train",
                     "--out", str(out), "--range", "1:5", "--num-negatives", "2"])
    assert code == 0 and "wrote 4 rows (3 queries)" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {"query", "positive", "negatives"} <= set(rows[0]) and all(len(r["negatives"]) == 2 for r in rows)
    assert all(not set(r["negative_ids"]) & {d for q, d in QRELS if q == r["query_id"]} for r in rows)


@pytest.mark.parametrize("args, fragment", [(["--range", "9:3"], "--range"), (["--num-negatives", "0"], "at least 1")])
def test_mine_cli_refuses_bad_options(tiny_model_dir, beir_dir, tmp_path, capsys, args, fragment):
    code = cli_main(["mine", "--model", str(tiny_model_dir), "--data", str(beir_dir), "--out",
                     str(tmp_path / "x.jsonl"), *args])
    assert code == 2 and fragment in capsys.readouterr().err


def test_beir_recipe_trains_on_mined_negatives(recipe_file, tmp_path):
    from embedkit.training import load_recipe, run_recipe

    data = {"kind": "beir", "path": "beir", "split": "train",
            "hard_negatives": {"range": "0:3", "num_negatives": 1, "sampling": "top"}}
    result = run_recipe(load_recipe(recipe_file(data=data, max_steps=1, batch_size=2)), tmp_path / "out")
    assert result.steps == 1 and (tmp_path / "out" / "model.safetensors").exists()


def test_mining_reads_the_embeddings_evaluation_cached(tiny_model, tmp_path, monkeypatch):
    """``embedkit mine`` after ``embedkit eval retrieval`` on the same data encodes nothing again."""
    import embedkit.encoding.cache as cache_module
    from embedkit.evaluation import evaluate_retrieval

    docs = {**DOCS, "untitled": ("", " A document without a title, spaces around it. ")}  # encoded as mteb strips it
    dataset = load_beir(write_beir(tmp_path / "b", docs=docs, queries=QUERIES, qrels=QRELS, split="train"), split="train")
    evaluate_retrieval(tiny_model, dataset, show_progress=False)
    encoded = []
    real_encode = cache_module.encode
    monkeypatch.setattr(cache_module, "encode", lambda model, texts, **k: encoded.extend(texts) or real_encode(model, texts, **k))
    examples = mine_hard_negatives(tiny_model, dataset, window=(0, 5), show_progress=False)
    assert examples and encoded == []
