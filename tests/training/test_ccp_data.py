"""CCP data: a real sentence splitter and (anchor, context) pairs within the window."""
from __future__ import annotations

from embedkit.training.ccp import context_pairs, split_documents, split_sentences


def test_splitter_handles_abbreviations_and_numbers():
    text = "Dr. Smith measured 3.5 mm at day 2. The effect was large (p < 0.05). It held, i.e. twice."
    assert split_sentences(text) == ["Dr. Smith measured 3.5 mm at day 2.", "The effect was large (p < 0.05).",
                                     "It held, i.e. twice."]


def test_split_documents_caches_results(tmp_path):
    docs = ["One sentence here. Another one there.", "Single."]
    first = split_documents(docs, cache=tmp_path, show_progress=False)
    assert first == [["One sentence here.", "Another one there."], ["Single."]]
    assert len(list(tmp_path.glob("*.json"))) == 1
    assert split_documents(docs, cache=tmp_path, show_progress=False) == first


def test_positive_is_within_the_window():
    doc = [f"sentence {i}" for i in range(10)]
    pairs = context_pairs([doc, ["alone"]], window=2, seed=3)
    assert len(pairs) == 10  # one per sentence; a one-sentence document gives none
    for anchor, positive in pairs:
        distance = abs(int(anchor.split()[1]) - int(positive.split()[1]))
        assert 1 <= distance <= 2
    assert context_pairs([doc], window=2, seed=3) == pairs  # seeded
    assert {p for _, p in context_pairs([doc], window=1, seed=0) if _ == "sentence 0"} == {"sentence 1"}
