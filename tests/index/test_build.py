"""Streaming builds from documents with the tiny random model, chunking, and precomputed vectors."""
from __future__ import annotations

import numpy as np
import pytest

from embedkit.data import Document
from embedkit.errors import ConfigError, DataError, IndexError_
from embedkit.index import Chunker, build_from_vectors, build_index
from embedkit.index.build import NpyRows, add_documents
from embedkit.models import model_fingerprint

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split()


def docs(n: int, words: int = 12) -> list[Document]:
    return [Document(f"d{i}", f"title {i}", " ".join(WORDS[(i + j) % len(WORDS)] for j in range(words)))
            for i in range(n)]


def count_encodes(monkeypatch) -> list[int]:
    """Texts per call of the encoder behind the embedding cache (what a cache miss costs)."""
    import embedkit.encoding.cache as cache

    calls: list[int] = []
    real = cache.encode
    monkeypatch.setattr(cache, "encode", lambda model, texts, **kw: calls.append(len(texts)) or real(model, texts, **kw))
    return calls


def test_build_streams_and_records_the_model(tiny_model, monkeypatch):
    import embedkit.index.build as build
    from embedkit.encoding import encode

    monkeypatch.setattr(build, "ENCODE_SLICE", 7)  # several slices even for a small corpus
    calls = count_encodes(monkeypatch)
    index = build_index(tiny_model, iter(docs(20)), show_progress=False)
    assert len(index) == 20 and index.model_fingerprint == model_fingerprint(tiny_model)
    assert index.model_name == "st" and index.dim == 32
    assert calls == [7, 7, 6]
    hit = index.search(encode(tiny_model, ["title 3 " + docs(20)[3].text]), 1)[0][0]
    assert (hit.id, hit.title, hit.text) == ("d3", "title 3", docs(20)[3].text)


def test_builds_and_adds_go_through_the_embedding_cache(tiny_model, monkeypatch):
    calls = count_encodes(monkeypatch)
    first = build_index(tiny_model, docs(30), show_progress=False)
    assert sum(calls) == 30
    again = build_index(tiny_model, docs(30), show_progress=False)  # the same corpus: read from the cache
    assert sum(calls) == 30
    assert np.array_equal(first.faiss_index.reconstruct_n(0, 30), again.faiss_index.reconstruct_n(0, 30))
    add_documents(again, tiny_model, [Document("new", "", "never seen before")], show_progress=False)
    assert sum(calls) == 31


def test_upsert_replaces_whole_documents_with_their_chunks(tiny_model):
    long_doc = Document("long", "T", " ".join(WORDS * 10))
    index = build_index(tiny_model, [long_doc, *docs(3)], chunk_tokens=32, chunk_overlap=4, show_progress=False)
    before = len(index)
    added = add_documents(index, tiny_model, [Document("long", "T", "now short"), Document("d9", "", "new")],
                          chunk_tokens=32, chunk_overlap=4, show_progress=False, upsert=True)
    assert added == 2 and len(index) == 5 < before
    assert not [i for i in index.ids() if i.startswith("long#")] and "long" in index and "d9" in index
    with pytest.raises(DataError, match="'d1' appears twice"):
        add_documents(index, tiny_model, [docs(3)[1], docs(3)[2], docs(3)[1]], show_progress=False, upsert=True)


def test_build_trains_on_a_sample_first(tiny_model):
    index = build_index(tiny_model, docs(300), spec="IVF4,Flat", show_progress=False)
    assert index.is_trained and len(index) == 300


def test_empty_corpus(tiny_model):
    with pytest.raises(DataError, match="empty corpus"):
        build_index(tiny_model, [], show_progress=False)


def test_chunking_names_the_parent(tiny_model):
    long_doc = Document("long", "T", " ".join(WORDS * 10))  # ~190 words: several chunks of 32 tokens
    index = build_index(tiny_model, [long_doc, *docs(3)], chunk_tokens=32, chunk_overlap=4, show_progress=False)
    chunk_ids = [i for i in index.ids() if i.startswith("long#")]
    assert len(chunk_ids) >= 5 and "d0" in index
    hits = index.search(np.ones((1, 32), dtype=np.float32), k=len(index))[0]
    chunks = [h for h in hits if h.id.startswith("long#")]
    assert all(h.parent_id == "long" and h.document_id == "long" and h.title == "T" for h in chunks)
    assert all(h.parent_id is None for h in hits if not h.id.startswith("long#"))
    # every word of the long document is in some chunk: nothing is dropped past the model's max length
    stored = " ".join(h.text for h in sorted(chunks, key=lambda h: int(h.id.split("#")[1])))
    assert set(stored.split()) == set(WORDS) and stored.split()[-1] == WORDS[-1]
    by_doc = index.search(np.ones((1, 32), dtype=np.float32), k=4, by_parent=True)[0]
    assert sorted(h.document_id for h in by_doc) == ["d0", "d1", "d2", "long"]
    assert index.build_params["chunk_tokens"] == 32


def test_chunk_windows_fit_the_model(tiny_model):
    chunker = Chunker(tiny_model, 32, 4)
    for p in chunker.passages("x", "A title", " ".join(WORDS * 5)):
        assert len(tiny_model.tokenizer(p.encoded)["input_ids"]) <= 32
    with pytest.raises(ConfigError, match="above the model's max length 64"):
        Chunker(tiny_model, 100)
    with pytest.raises(ConfigError, match="overlap"):
        Chunker(tiny_model, 32, 20)


def test_add_documents_refuses_duplicates_before_changing_anything(tiny_model):
    index = build_index(tiny_model, docs(5), show_progress=False)
    with pytest.raises(IndexError_, match="already in the index: 'd1'"):
        add_documents(index, tiny_model, [Document("new", "", "x"), Document("d1", "", "y")], show_progress=False)
    assert len(index) == 5


def test_build_from_vectors_in_slices():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 8)).astype(np.float32)
    index = build_from_vectors([str(i) for i in range(500)], x, spec="IVF4,Flat", slice_size=64, show_progress=False)
    assert len(index) == 500 and index.search(x[7], 1)[0][0].id == "7"
    with pytest.raises(DataError, match="3 ids for 500 vectors"):
        build_from_vectors(["a", "b", "c"], x)
    with pytest.raises(DataError, match="empty"):
        build_from_vectors([], x[:0])


def test_npy_rows_reads_slices_and_gathers(tmp_path):
    x = np.arange(60, dtype=np.float32).reshape(20, 3)
    np.save(tmp_path / "x.npy", x)
    rows = NpyRows(tmp_path / "x.npy")
    assert rows.shape == (20, 3) and len(rows) == 20
    np.testing.assert_array_equal(rows[5:9], x[5:9])
    np.testing.assert_array_equal(rows[18:40], x[18:])
    np.testing.assert_array_equal(rows[np.array([0, 7, 19])], x[[0, 7, 19]])
    np.testing.assert_array_equal(rows[::4], x[::4])
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="no objects, no pickle"):
        NpyRows(tmp_path / "o.npy")
    index = build_from_vectors([str(i) for i in range(20)], rows, slice_size=6, show_progress=False)
    assert len(index) == 20
