"""BM25 over bm25s, reciprocal rank fusion, hybrid search."""
from __future__ import annotations

import numpy as np
import pytest

from embedkit.data import Document
from embedkit.errors import IndexError_
from embedkit.index import BM25Index, FaissIndex, HybridSearcher, IndexFolder, reciprocal_rank_fusion

CORPUS = [Document("cats", "Cats", "Cats purr and chase mice around the house."),
          Document("dogs", "Dogs", "Dogs bark at strangers and love running."),
          Document("fish", "", "Fish swim in rivers, lakes and the open sea."),
          Document("birds", "Birds", "Birds sing at dawn and migrate south in winter.")]


def test_bm25_ranks_by_terms_with_stemming(tmp_path):
    bm25 = BM25Index.from_documents(CORPUS)
    assert bm25.search(["running dog"], 2)[0][0].id == "dogs"  # "running" -> "run", "dog" matches "Dogs"
    assert bm25.search(["migrating birds singing"], 1)[0][0].id == "birds"
    assert bm25.search(["xylophone"], 3) == [[]]  # no matching term: no hit rather than zero-score noise
    assert len(bm25.search(["the sea"], 50)[0]) == 1  # k above the size; stopword "the" ignored
    dense = FaissIndex(2)
    dense.add([d.id for d in CORPUS], np.eye(4, 2, dtype=np.float32) + 0.1)
    IndexFolder(dense, bm25).save(tmp_path)  # BM25 is kept beside a FAISS index, under its manifest
    loaded = BM25Index.load(tmp_path)
    assert [h.id for h in loaded.search(["chase mice"], 4)[0]] == [h.id for h in bm25.search(["chase mice"], 4)[0]]


def test_bm25_add_remove_upsert():
    bm25 = BM25Index.from_documents(CORPUS[:2])
    bm25.add([CORPUS[2]])
    assert bm25.search(["rivers"], 1)[0][0].id == "fish"
    bm25.upsert([Document("fish", "", "Fish fly over mountains."), CORPUS[3]])
    assert bm25.search(["rivers"], 1) == [[]] and bm25.search(["mountains"], 1)[0][0].id == "fish"
    assert sorted(bm25.ids) == ["birds", "cats", "dogs", "fish"]
    bm25.remove(["birds"])
    bm25.remove(["fish"])
    assert bm25.search(["rivers"], 1) == [[]]
    with pytest.raises(IndexError_, match="not in the index"):
        bm25.remove(["zzz"])
    with pytest.raises(IndexError_, match="already in the index"):
        bm25.add([CORPUS[0]])


def test_rrf_follows_the_formula():
    fused = reciprocal_rank_fusion([[("a", 9.0), ("b", 8.0), ("c", 1.0)], [("c", 0.9), ("a", 0.1)]], k=60)
    expected = {"a": 1 / 61 + 1 / 62, "b": 1 / 62, "c": 1 / 63 + 1 / 61}
    assert [d for d, _ in fused] == ["a", "c", "b"]
    assert dict(fused) == pytest.approx(expected)
    assert reciprocal_rank_fusion([[("x", 1), ("x", 0.5)]], k=0) == [("x", 1.0)]  # a repeat counts once
    weighted = reciprocal_rank_fusion([[("a", 1)], [("b", 1)]], k=0, weights=[1.0, 2.0])
    assert weighted == [("b", 2.0), ("a", 1.0)]
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([[("a", 1)]], weights=[1, 2])


def test_hybrid_rescues_what_one_side_misses():
    # dense ranks fish, birds, cats, dogs; BM25 ranks dogs, birds: second in both beats first in one
    dense = FaissIndex(3)
    vectors = {"cats": [0.3, 0, 1], "dogs": [0, 1, 0.2], "fish": [1, 0, 0], "birds": [0.7, 0.5, 0]}
    dense.add(list(vectors), np.array(list(vectors.values()), dtype=np.float32),
              texts=[d.text for d in CORPUS], titles=[d.title for d in CORPUS])
    bm25 = BM25Index()
    bm25.index(["dogs", "birds", "cats"], ["dog dog bark", "dog bird sing", "cat"])
    hybrid = HybridSearcher(dense, bm25, depth=10)
    hits = hybrid.search(["dog"], k=3, query_vectors=np.array([[1, 0.2, 0]], dtype=np.float32))[0]
    assert hits[0].id == "birds"  # second in both beats first in one
    assert {h.id for h in hits[1:]} == {"dogs", "fish"}
    assert hits[0].text == CORPUS[3].text and hits[0].score == pytest.approx(2 / 62)
