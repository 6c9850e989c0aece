"""evaluate_sts / evaluate_retrieval agree with independent reference computations."""
import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from embedkit.data import load_beir, load_sts
from embedkit.evaluation import evaluate_retrieval, evaluate_sts
from helpers import write_beir, write_stsb


def test_sts_matches_scipy_on_cosine(tiny_model, tmp_path):
    dataset = load_sts(write_stsb(tmp_path / "sts-test.csv"))
    result = evaluate_sts(tiny_model, dataset, show_progress=False)
    a = tiny_model.encode([p.sentence1 for p in dataset.pairs], normalize_embeddings=True)
    b = tiny_model.encode([p.sentence2 for p in dataset.pairs], normalize_embeddings=True)
    cos = (a * b).sum(1)
    gold = [p.score for p in dataset.pairs]
    assert result["spearman"] == pytest.approx(100 * spearmanr(gold, cos)[0], abs=1e-4)
    assert result["pearson"] == pytest.approx(100 * pearsonr(gold, cos)[0], abs=1e-4)


def _reference_retrieval(model, dataset):
    import pytrec_eval

    ids = list(dataset.corpus)
    docs = [f"{d.title} {d.text}".strip() for d in dataset.corpus.values()]
    d = model.encode(docs, normalize_embeddings=True)
    q = model.encode(list(dataset.queries.values()), normalize_embeddings=True)
    run = {qid: {ids[j]: float(s) for j, s in enumerate(row)} for qid, row in zip(dataset.queries, q @ d.T)}
    evaluator = pytrec_eval.RelevanceEvaluator(dataset.qrels, {"ndcg_cut.10", "recall.100"})
    per_query = evaluator.evaluate(run)
    return {"ndcg@10": 100 * np.mean([v["ndcg_cut_10"] for v in per_query.values()])}


def test_retrieval_matches_pytrec_eval(tiny_model, tmp_path):
    dataset = load_beir(write_beir(tmp_path / "beir"), split="test")
    result = evaluate_retrieval(tiny_model, dataset, show_progress=False)
    assert result["ndcg@10"] == pytest.approx(_reference_retrieval(tiny_model, dataset)["ndcg@10"], abs=1e-3)
    assert result["n_queries"] == 3


def test_second_evaluation_reads_the_cache(tiny_model, tmp_path, monkeypatch):
    dataset = load_sts(write_stsb(tmp_path / "sts-test.csv"))
    first = evaluate_sts(tiny_model, dataset, show_progress=False)
    calls = []
    monkeypatch.setattr(tiny_model, "encode", lambda *a, **k: calls.append(1))
    assert evaluate_sts(tiny_model, dataset, show_progress=False) == first
    assert not calls


@pytest.mark.e2e
def test_default_model_stsb_test_reproduces_published(shared_data):
    from embedkit.models import load_model

    result = evaluate_sts(load_model(), load_sts(shared_data / "stsb", split="test"), show_progress=False)
    assert result["n_pairs"] == 1379
    assert round(result["spearman"], 2) == 82.03


@pytest.mark.e2e
def test_default_model_scifact_subset_matches_reference(shared_data):
    """A subset (50 test queries, their abstracts + 300 others) keeps this under a minute."""
    from embedkit.data.records import BEIRDataset
    from embedkit.models import load_model

    full = load_beir(shared_data / "scifact", split="test")
    qids = sorted(full.qrels)[:50]
    keep = {d for q in qids for d in full.qrels[q]} | set(list(full.corpus)[:300])
    subset = BEIRDataset(corpus={i: full.corpus[i] for i in full.corpus if i in keep},
                         queries={q: full.queries[q] for q in qids}, qrels={q: full.qrels[q] for q in qids},
                         name="scifact-subset", split="test")
    model = load_model()
    result = evaluate_retrieval(model, subset, show_progress=False)
    assert result["ndcg@10"] == pytest.approx(_reference_retrieval(model, subset)["ndcg@10"], abs=1e-3)
    assert result["ndcg@10"] > 60


@pytest.mark.parametrize("index", ["Flat", "HNSW32", "bm25", "hybrid"])
def test_retrieval_through_index_layer(tiny_model, tmp_path, index):
    dataset = load_beir(write_beir(tmp_path / "beir"), split="test")
    exact = evaluate_retrieval(tiny_model, dataset, show_progress=False)
    result = evaluate_retrieval(tiny_model, dataset, index=index, show_progress=False)
    assert result["index"] == index and result["n_queries"] == 3
    if index in ("Flat", "HNSW32"):  # six documents: any FAISS spec finds the exact neighbours
        assert result["recall@10_vs_exact"] == pytest.approx(100.0)
        assert result["ndcg@10"] == pytest.approx(exact["ndcg@10"], abs=1e-6)
    else:
        assert "recall@10_vs_exact" not in result


def test_bm25_ranks_exact_term_matches(tiny_model, tmp_path):
    """BM25 ignores the (random) model: queries sharing rare terms with their documents rank them first."""
    docs = {"a": ("", "zebra stripes pattern"), "b": ("", "quantum flux capacitor"), "c": ("", "bread baking yeast")}
    queries = {"q1": "zebra pattern", "q2": "flux capacitor", "q3": "baking bread"}
    dataset = load_beir(write_beir(tmp_path / "beir", docs, queries, [("q1", "a"), ("q2", "b"), ("q3", "c")]))
    assert evaluate_retrieval(tiny_model, dataset, index="bm25", show_progress=False)["ndcg@10"] == pytest.approx(100.0)
