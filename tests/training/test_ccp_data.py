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
    assert {d for _, _, d in pairs} == {0}
    for anchor, positive, _ in pairs:
        distance = abs(int(anchor.split()[1]) - int(positive.split()[1]))
        assert 1 <= distance <= 2
    assert context_pairs([doc], window=2, seed=3) == pairs  # seeded
    assert {p for a, p, _ in context_pairs([doc], window=1, seed=0) if a == "sentence 0"} == {"sentence 1"}
    assert {d for _, _, d in context_pairs([["x", "y"], ["z"], ["u", "v"]], window=1)} == {0, 2}


def test_window_positive_is_the_whole_context_in_order():
    doc = [f"s{i}" for i in range(5)]
    pairs = {a: p for a, p, _ in context_pairs([doc], window=2, positive="window")}
    assert pairs["s0"] == "s1 s2" and pairs["s2"] == "s0 s1 s3 s4" and pairs["s4"] == "s2 s3"
