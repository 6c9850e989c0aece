"""FaissIndex operations, for every spec family and metric."""
from __future__ import annotations

import numpy as np
import pytest
from index.ixhelpers import DIM, METRICS, SPECS, clustered_vectors, ids_for

from embedkit.errors import IndexError_
from embedkit.index import FaissIndex, Hit

N = 600


def make(spec="Flat", metric="cosine", n=N, seed=0) -> tuple[FaissIndex, np.ndarray]:
    x = clustered_vectors(n, seed=seed)
    index = FaissIndex(DIM, spec, metric, model_name="m", model_fingerprint="f" * 16)
    index.add(ids_for(n), x, texts=[f"text {i}" for i in range(n)], titles=[f"title {i}" for i in range(n)])
    return index, x


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("metric", METRICS)
def test_every_operation_and_round_trip(spec, metric, tmp_path):
    index, x = make(spec, metric)
    if index.search_params():
        index.set_search_params(**{next(iter(index.search_params())): 64})
    assert len(index) == N and index.is_trained
    hits = index.search(x[:5], k=3)
    assert len(hits) == 5 and all(len(row) == 3 for row in hits)
    first = hits[0][0]
    assert isinstance(first, Hit) and first.text == f"text {first.id[3:]}" and first.title == f"title {first.id[3:]}"
    if "PQ" not in spec and metric != "ip":  # under ip a longer vector can beat the query itself
        assert [row[0].id for row in hits] == ids_for(5)
    assert all(row[i].score >= row[i + 1].score for row in hits for i in range(len(row) - 1))

    assert index.remove(["doc0", "doc1"]) == 2
    assert len(index) == N - 2 and "doc0" not in index
    assert all(h.id not in ("doc0", "doc1") for row in index.search(x[:2], k=10) for h in row)

    index.upsert(["doc2", "new"], x[[0, 1]] * -1, texts=["replaced", "brand new"])
    assert len(index) == N - 1
    top = index.search(-x[0], k=1)[0][0]
    if "PQ" not in spec and metric != "ip":
        assert (top.id, top.text) == ("doc2", "replaced")

    before = index.search(x[:20], k=5)
    index.save(tmp_path / "ix")
    loaded = FaissIndex.load(tmp_path / "ix", verify=True)
    assert loaded.info()["count"] == N - 1 and loaded.spec == spec and loaded.metric == metric
    assert loaded.search_params() == index.search_params()
    after = loaded.search(x[:20], k=5)
    assert [[h.id for h in r] for r in after] == [[h.id for h in r] for r in before]
    np.testing.assert_allclose([[h.score for h in r] for r in after], [[h.score for h in r] for r in before],
                               rtol=1e-5, atol=1e-5)

    mapped = FaissIndex.load(tmp_path / "ix", mmap=True)
    assert [[h.id for h in r] for r in mapped.search(x[:20], k=5)] == [[h.id for h in r] for r in before]
    with pytest.raises(IndexError_, match="memory-mapped"):
        mapped.add(["x"], x[:1])


def test_scores_follow_the_metric():
    x = np.eye(DIM, dtype=np.float32)[:4] * np.array([[1], [2], [3], [4]], dtype=np.float32)
    q = np.eye(DIM, dtype=np.float32)[:1] * 2
    for metric, expected in [("cosine", 1.0), ("ip", 2.0), ("l2", -1.0)]:
        index = FaissIndex(DIM, "Flat", metric)
        index.add(["a", "b", "c", "d"], x)
        assert index.search(q, 1)[0][0] == Hit("a", pytest.approx(expected), None, None, None)


def test_caller_vectors_are_not_normalised_in_place():
    x = clustered_vectors(10)
    copy = x.copy()
    index = FaissIndex(DIM)
    index.add(ids_for(10), x)
    index.search(x, 2)
    np.testing.assert_array_equal(x, copy)


def test_k_larger_than_the_index_returns_what_exists():
    index, x = make("HNSW16", n=5)
    assert [len(r) for r in index.search(x[:2], k=50)] == [5, 5]
    index.remove(["doc0"])
    assert [len(r) for r in index.search(x[:2], k=50)] == [4, 4]


def test_empty_index_searches_to_nothing():
    assert FaissIndex(DIM).search(np.zeros((2, DIM), dtype=np.float32), 3) == [[], []]


@pytest.mark.parametrize("bad", [np.zeros((3, DIM + 1)), np.zeros((2, 2, DIM)), np.full((1, DIM), np.nan)])
def test_wrong_vectors_are_refused(bad):
    index, _ = make(n=10)
    with pytest.raises(IndexError_, match="dimension|NaN"):
        index.add(["x", "y", "z"][:len(bad)], bad)
    with pytest.raises(IndexError_, match="dimension|NaN"):
        index.search(bad, 1)
    assert len(index) == 10


def test_duplicate_and_present_ids_are_refused_and_nothing_is_added():
    index, x = make(n=10)
    with pytest.raises(IndexError_, match="duplicate ids in one add: 'a'"):
        index.add(["a", "a"], x[:2])
    with pytest.raises(IndexError_, match="already in the index: 'doc3'.*upsert"):
        index.add(["new", "doc3"], x[:2])
    with pytest.raises(IndexError_, match="2 ids for 3 vectors"):
        index.add(["p", "q"], x[:3])
    assert len(index) == 10 and index.faiss_index.ntotal == 10


def test_unknown_ids_on_remove_change_nothing():
    index, _ = make(n=10)
    with pytest.raises(IndexError_, match="not in the index: 'nope'"):
        index.remove(["doc1", "nope"])
    assert len(index) == 10 and "doc1" in index


def test_hnsw_marks_deleted_then_compacts(tmp_path):
    index, x = make("HNSW16", n=100)
    index.remove(ids_for(10))
    assert index.info()["marked_deleted"] == 10 and index.faiss_index.ntotal == 100
    index.save(tmp_path / "ix")  # 10% < 20%: kept as marks, filtered after load too
    loaded = FaissIndex.load(tmp_path / "ix")
    assert loaded.info()["marked_deleted"] == 10
    assert all(h.id not in ids_for(10) for row in loaded.search(x[:10], 100) for h in row)
    assert loaded.compact() == 10
    assert loaded.faiss_index.ntotal == 90 and loaded.info()["marked_deleted"] == 0
    assert loaded.search(x[50], 1)[0][0].id == "doc50"
    loaded.remove(ids_for(40)[10:])
    loaded.save(tmp_path / "ix")  # 30 of 90 marked: save compacts by itself
    assert FaissIndex.load(tmp_path / "ix").faiss_index.ntotal == 60


def test_untrained_spec_needs_enough_vectors():
    index = FaissIndex(DIM, "IVF64,Flat")
    with pytest.raises(IndexError_, match="needs at least 64 training vectors, got 10"):
        index.add(ids_for(10), clustered_vectors(10))
    assert len(index) == 0


def test_bad_spec_and_metric():
    with pytest.raises(IndexError_, match="invalid FAISS index spec 'Nonsense12'"):
        FaissIndex(DIM, "Nonsense12")
    with pytest.raises(IndexError_, match="unknown metric 'dot'"):
        FaissIndex(DIM, "Flat", "dot")
    with pytest.raises(IndexError_, match="no search parameter 'nprobe'.*efSearch"):
        FaissIndex(DIM, "HNSW16").set_search_params(nprobe=3)


def test_by_parent_keeps_one_hit_per_document():
    x = clustered_vectors(30, clusters=3)
    index = FaissIndex(DIM)
    index.add([f"p{i // 3}#{i % 3}" for i in range(30)], x, parents=[f"p{i // 3}" for i in range(30)])
    rows = index.search(x[:4], k=5, by_parent=True)
    for row in rows:
        parents = [h.document_id for h in row]
        assert len(parents) == len(set(parents)) == 5


def test_remove_documents_takes_all_chunks():
    index = FaissIndex(DIM)
    index.add(["a#0", "a#1", "b"], clustered_vectors(3), parents=["a", "a", None])
    assert index.remove_documents(["a"]) == 2
    assert index.ids() == ["b"]
    with pytest.raises(IndexError_, match="'zz'"):
        index.remove_documents(["b", "zz"])


def test_tune_reaches_the_target_and_is_saved(tmp_path):
    index, x = make("IVF8,Flat", n=N)
    result = index.tune(x[:50] + 0.1, target_recall=0.9, k=10)
    assert result.reached and result.param == "nprobe" and result.recall >= 0.9
    assert index.search_params() == {"nprobe": result.value}
    assert [p.value for p in result.curve] == sorted(p.value for p in result.curve)
    index.save(tmp_path / "ix")
    loaded = FaissIndex.load(tmp_path / "ix")
    assert loaded.search_params() == {"nprobe": result.value} and loaded.info()["tuned"]["value"] == result.value


def test_tune_says_plainly_when_the_target_cannot_be_reached():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, DIM)).astype(np.float32)
    index = FaissIndex(DIM, "IVF8,PQ2x4")  # 1 byte per vector: recall capped well below 0.99
    index.add(ids_for(N), x)
    result = index.tune(x[:40], target_recall=0.99, reference_ids=ids_for(N), reference_vectors=x)
    assert not result.reached
    assert "cannot be reached" in result.message and "kept" in result.message
    assert result.recall == max(p.recall for p in result.curve)
    assert index.search_params() == {"nprobe": result.value}


def test_tune_flat_has_nothing_to_tune():
    index, x = make("Flat", n=50)
    result = index.tune(x[:5])
    assert result.param is None and result.recall == 1.0 and result.reached


def test_model_check():
    index = FaissIndex(DIM, model_name="a", model_fingerprint="1" * 16)
    index.check_model("1" * 16)
    with pytest.raises(IndexError_, match="built with model a.*--force"):
        index.check_model("2" * 16, "b")
    index.check_model("2" * 16, "b", force=True)


def test_search_arrays_matches_search():
    index, x = make("Flat", n=20)
    scores, ids = index.search_arrays(x[:3], k=30)
    assert ids.shape == (3, 20) and scores.shape == (3, 20)
    hits = index.search(x[:3], k=30)
    assert [[h.id for h in row] for row in hits] == ids.tolist()
    np.testing.assert_allclose(scores, [[h.score for h in row] for row in hits])


def test_hnsw_beam_defaults_to_64_and_widens_to_k():
    x = clustered_vectors(2000, clusters=200)
    index = FaissIndex(DIM, "HNSW16")
    assert index.search_params() == {"efSearch": 64}
    index.add(ids_for(2000), x)
    index.set_search_params(efSearch=10)
    exact = FaissIndex(DIM)
    exact.add(ids_for(2000), x)
    deep, ref = index.search_arrays(x[:20], 300)[1], exact.search_arrays(x[:20], 300)[1]
    recall = np.mean([len(set(a) & set(b)) / 300 for a, b in zip(deep, ref)])
    assert recall > 0.95  # a beam of 10 alone would return a poor tail past rank 10
    assert index.search_params() == {"efSearch": 10}
