"""The loaders on the real shared data, checked against the counts its READMEs verify."""
from __future__ import annotations

import pytest

from embedkit.data import (count_documents, data_checksum, iter_documents, load_beir, load_pairs, load_sentences,
                           load_sts, load_triplets, read_lines)

pytestmark = pytest.mark.e2e


def test_stsb_splits_and_genres(shared_data):
    test = load_sts(shared_data / "stsb", "test")
    assert len(test) == 1379 and test.name == "stsb-test"
    assert {g: len(p) for g, p in test.by_genre(normalize=False).items()} == {
        "main-captions": 625, "main-forums": 254, "main-news": 500}
    assert all(0 <= p.score <= 5 and p.sentence1 and p.sentence2 for p in test.pairs)
    # the README's example line with an unescaped quote survives intact
    assert any(p.sentence2 == 'My answer to your question is "Probably Not".' for p in test.pairs)
    assert len(load_sts(shared_data / "stsb", "dev")) == 1500
    train = load_sts(shared_data / "stsb" / "sts-train.csv")
    assert len(train) == 5749
    assert {g: len(p) for g, p in train.by_genre(normalize=False).items()} == {
        "main-news": 3299, "main-captions": 2000, "main-forum": 450}
    assert len(train.by_genre()["main-forums"]) == 450


def test_stsb_resolves_against_embedkit_data(shared_data, monkeypatch, tmp_path):
    monkeypatch.setenv("EMBEDKIT_DATA", str(shared_data))
    monkeypatch.chdir(tmp_path)
    assert len(load_sts("stsb")) == 1379 and len(load_sts("stsb/sts-test.csv")) == 1379


def test_scifact(shared_data):
    test = load_beir(shared_data / "scifact", "test")
    assert len(test.corpus) == 5183 and len(test.queries) == 300
    assert sum(len(docs) for docs in test.qrels.values()) == 339
    assert all(doc.title and doc.text for doc in test.corpus.values())
    train = load_beir(shared_data / "scifact", "train")
    assert len(train.queries) == 809 and sum(len(docs) for docs in train.qrels.values()) == 919
    assert count_documents(shared_data / "scifact") == 5183
    assert sum(1 for _ in iter_documents(shared_data / "scifact")) == 5183
    assert data_checksum(shared_data / "scifact", "test") != data_checksum(shared_data / "scifact", "train")


def test_nli_triplets_and_wiki_sentences(shared_data):
    triplets = load_triplets(shared_data / "nli" / "snli_devtest_triplets.csv")
    assert len(triplets) == 6339 and all(t.anchor and t.positive and t.negative for t in triplets)
    assert len({t.anchor for t in triplets}) == 5863
    assert triplets[0].anchor == "Two women are embracing while holding to go packages ."
    assert len(load_pairs(shared_data / "nli" / "snli_devtest_triplets.csv")) == 6339
    wiki = shared_data / "wiki" / "wiki1m_for_simcse.first11914.txt"
    sentences = load_sentences(wiki)
    assert len(sentences) == 11914 and sentences[0] == "YMCA in South Australia"
    assert read_lines(wiki) == sentences  # the file has no blank lines
    assert count_documents(wiki) == 11914
