"""RankGen pieces on tiny models: sampling, scoring, LM negatives (and resume), reranking, beam search, metrics."""
from __future__ import annotations

import json

import numpy as np
import pytest

from embedkit.errors import ConfigError, ModelError
from embedkit.generative.documents import SourceDocument, make_examples, split_examples
from embedkit.generative.sampling import SamplingConfig, continuation_logprobs, cut_at_eos, sample_continuations

SAMPLING = SamplingConfig(max_new_tokens=6, max_prefix_tokens=32)


def test_load_causal_lm_errors(tmp_path):
    from embedkit.generative.lm import load_causal_lm

    with pytest.raises(ModelError, match="not a causal LM"):
        load_causal_lm(str(tmp_path))
    with pytest.raises(ModelError, match="no such"):
        load_causal_lm(str(tmp_path / "missing"))


def test_sampling_is_seeded_and_sized(tiny_lm):
    a = sample_continuations(tiny_lm, ["the river flows", "a cat"], 3, SAMPLING, seed=1)
    b = sample_continuations(tiny_lm, ["the river flows", "a cat"], 3, SAMPLING, seed=1)
    assert a == b and len(a) == 2 and all(len(row) == 3 for row in a)
    assert all(isinstance(t, str) and t for row in a for t in row)


def test_cut_at_eos():
    assert cut_at_eos([5, 6, 2, 7], {2}).ids == [5, 6] and cut_at_eos([5, 6, 2], {2}).finished
    assert not cut_at_eos([5, 6], {2}).finished


def test_continuation_logprobs_match_a_manual_forward(tiny_lm):
    import torch

    prefix, cont = "the river flows", "into the sea"
    got = continuation_logprobs(tiny_lm, prefix, [cont, "and"])
    tok = tiny_lm.tokenizer
    p = tok(prefix, add_special_tokens=False)["input_ids"]
    c = tok(cont, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + c])
    with torch.no_grad():
        logp = torch.log_softmax(tiny_lm.model(ids).logits[0, :-1], -1)
    manual = logp[torch.arange(len(p) - 1, len(p) + len(c) - 1), torch.tensor(c)].mean()
    assert got[0] == pytest.approx(float(manual), abs=1e-4)  # the batch is left padded; positions follow the mask
    assert len(got) == 2


def test_rankgen_score_is_dot_product_of_marked_embeddings(tiny_scorer):
    from embedkit.encoding import encode

    model = tiny_scorer.model
    assert model.prompts["prefix"] == "pre " and model.prompts["suffix"] == "suffi "
    pre = encode(model, ["the river flows"], prompt="pre ")
    suf = encode(model, ["into the sea", "a cat sat"], prompt="suffi ")
    np.testing.assert_allclose(tiny_scorer.score_candidates("the river flows", ["into the sea", "a cat sat"]),
                               suf @ pre[0], rtol=1e-5)
    np.testing.assert_allclose(tiny_scorer.score_pairs(["the river flows"], ["into the sea"]), suf[:1] @ pre[0],
                               rtol=1e-5)


def test_make_examples_negatives_come_from_elsewhere_in_the_document():
    docs = [SourceDocument(f"d{i}", tuple(f"sentence {i}-{j}." for j in range(8))) for i in range(20)]
    examples = make_examples(docs, prefix_sentences=3, suffix_sentences=1, in_doc_negatives=2)
    assert len(examples) == 20
    for e in examples:
        assert e.suffix not in e.in_doc_negatives and len(e.in_doc_negatives) == 2
        assert all(n.startswith(f"sentence {e.doc_id[1:]}-") for n in e.in_doc_negatives)
        assert e.prefix.count(".") == 3
    train, held = split_examples(examples, 0.3)
    assert {e.doc_id for e in train}.isdisjoint({e.doc_id for e in held}) and len(train) + len(held) == 20


def _examples(n):
    docs = [SourceDocument(f"d{i}", tuple(f"word{i} number {j} here." for j in range(7))) for i in range(n)]
    return make_examples(docs, in_doc_negatives=1)


def test_negatives_are_cached_and_resume_after_an_interruption(tiny_lm, tmp_path, monkeypatch):
    import embedkit.generative.negatives as neg

    examples = _examples(5)
    full = neg.generate_negatives(examples, tiny_lm, tmp_path / "a", num_per_prefix=2, sampling=SAMPLING,
                                  shard_size=2, show_progress=False)
    assert set(full) == {e.id for e in examples} and all(len(v) == 2 for v in full.values())

    # interrupted after the first shard: the second run makes only the missing shards, with the same result
    calls = {"n": 0}
    real = neg.sample_continuations

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(neg, "sample_continuations", flaky)
    with pytest.raises(KeyboardInterrupt):
        neg.generate_negatives(examples, tiny_lm, tmp_path / "b", num_per_prefix=2, sampling=SAMPLING, shard_size=2,
                               show_progress=False)
    assert len(list((tmp_path / "b").glob("shard-*.jsonl"))) == 1
    assert not list((tmp_path / "b").glob("*.tmp"))
    monkeypatch.setattr(neg, "sample_continuations", real)
    resumed = neg.generate_negatives(examples, tiny_lm, tmp_path / "b", num_per_prefix=2, sampling=SAMPLING,
                                     shard_size=2, show_progress=False)
    assert resumed == full

    # a finished cache is read, not regenerated; other settings are refused
    monkeypatch.setattr(neg, "sample_continuations", lambda *a, **k: pytest.fail("regenerated"))
    assert neg.generate_negatives(examples, tiny_lm, tmp_path / "a", num_per_prefix=2, sampling=SAMPLING,
                                  shard_size=2, show_progress=False) == full
    with pytest.raises(ConfigError, match="num_per_prefix"):
        neg.generate_negatives(examples, tiny_lm, tmp_path / "a", num_per_prefix=3, sampling=SAMPLING,
                               shard_size=2, show_progress=False)


def test_rerank_orders_samples_by_rankgen_score(tiny_lm, tiny_scorer):
    from embedkit.generative.rerank import over_generate_and_rerank

    ranked = over_generate_and_rerank(tiny_lm, "the river flows", 4, SAMPLING, tiny_scorer, seed=3)
    scores = [c.rankgen_score for c in ranked]
    assert len(ranked) == 4 and scores == sorted(scores, reverse=True)
    np.testing.assert_allclose(tiny_scorer.score_candidates("the river flows", [c.text for c in ranked]), scores,
                               rtol=1e-5)
    plain = over_generate_and_rerank(tiny_lm, "the river flows", 4, SAMPLING, None, seed=3)
    assert [c.text for c in plain] == sample_continuations(tiny_lm, ["the river flows"], 4, SAMPLING, seed=3)[0]
    assert all(c.rankgen_score is None and np.isfinite(c.lm_score) for c in plain)


def test_beam_search_rescores_every_n_tokens_and_keeps_the_best(tiny_lm, length_scorer):
    from embedkit.generative.beam import BeamConfig, rankgen_beam_search

    sampling = SamplingConfig(max_new_tokens=9, max_prefix_tokens=32)
    beams = rankgen_beam_search(tiny_lm, length_scorer, "the river flows",
                                BeamConfig(beam_size=2, samples_per_beam=3, rescore_every=4), sampling, seed=0)
    # 9 tokens in steps of 4, 4, 1: three rescorings of the pool, then one final scoring of the kept beams
    assert len(length_scorer.calls) == 4
    assert len(length_scorer.calls[0]) == 3 and len(length_scorer.calls[1]) == 6
    assert len(beams) == 2
    last_pool = length_scorer.calls[2]
    best_two = sorted(last_pool, key=lambda t: length_scorer.score_candidates("", [t])[0], reverse=True)[:2]
    assert sorted(c.text for c in beams) == sorted(best_two)


def test_metrics():
    from embedkit.generative.metrics import distinct_n, rep_n, suffix_identification_accuracy

    assert rep_n(["a b a b a b"], 2) == pytest.approx(1 - 2 / 5)
    assert rep_n(["a b c d"], 2) == 0.0
    assert distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)

    class Fake:
        def score_candidates(self, prefix, cands):
            return np.array([len(c) for c in cands], dtype=float)

    assert suffix_identification_accuracy(Fake(), ["p", "q"], [["long one", "x"], ["x", "long one"]]) == 0.5
    assert suffix_identification_accuracy(Fake(), ["p"], [["ab", "cd"]]) == 0.0  # a tie is a miss


def test_generate_cli_with_and_without_scorer(tiny_lm_dir, tiny_model_dir, capsys):
    from embedkit.cli.main import main

    assert main(["generate", "--lm", str(tiny_lm_dir), "--prefix", "the river", "--samples", "2",
                 "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert "nucleus" in out and "[2]" in out
    assert main(["generate", "--lm", str(tiny_lm_dir), "--scorer", str(tiny_model_dir), "--prefix", "the river",
                 "--samples", "3", "--max-new-tokens", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    scores = [c["rankgen_score"] for c in report["candidates"]]
    assert report["method"] == "rankgen-rerank" and scores == sorted(scores, reverse=True) and len(scores) == 3
    assert main(["generate", "--lm", str(tiny_lm_dir), "--scorer", str(tiny_model_dir), "--prefix", "the river",
                 "--samples", "2", "--max-new-tokens", "6", "--beam", "--rescore-every", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["method"] == "rankgen-beam"
    assert main(["generate", "--lm", str(tiny_lm_dir), "--prefix", "x", "--beam"]) == 2
    assert "needs --scorer" in capsys.readouterr().err
