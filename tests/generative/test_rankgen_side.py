"""RankGen pieces on tiny models: sampling, scoring, LM negatives (and resume), reranking, beam search, metrics."""
from __future__ import annotations

import json

import numpy as np
import pytest

from embedkit.errors import ConfigError, ModelError
from embedkit.generative.documents import SourceDocument, document_split, make_examples, split_documents
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


def test_samples_share_one_pass_over_their_context(tiny_lm, monkeypatch):
    import embedkit.generative.sampling as sampling

    contexts = [tiny_lm.tokenizer(t, add_special_tokens=False)["input_ids"] for t in ["the river flows into the", "a cat"]]
    near_greedy = SamplingConfig(max_new_tokens=6, top_p=1e-6)  # the same tokens whichever way the context ran
    calls = []
    real = sampling._shared_prompt_cache
    monkeypatch.setattr(sampling, "_shared_prompt_cache", lambda *a: calls.append(1) or real(*a))
    shared = sampling.sample_token_continuations(tiny_lm, contexts, 3, 6, near_greedy, seed=0)
    monkeypatch.setattr(sampling, "_shared_prompt_cache", lambda *a: None)
    repeated = sampling.sample_token_continuations(tiny_lm, contexts, 3, 6, near_greedy, seed=0)
    assert calls and shared == repeated and all(len(c.ids) == 6 for row in shared for c in row)


def test_cut_at_eos():
    assert cut_at_eos([5, 6, 2, 7], {2}).ids == [5, 6] and cut_at_eos([5, 6, 2], {2}).finished
    assert not cut_at_eos([5, 6], {2}).finished


def test_continuation_logprobs_match_a_manual_forward(tiny_lm):
    import torch

    prefix, conts = "the river flows", ["into the sea", "and", "", "past the old mill and on"]
    got = continuation_logprobs(tiny_lm, prefix, conts, batch_size=2)  # a batch mixes lengths: padding must not leak
    tok = tiny_lm.tokenizer
    p = tok(prefix, add_special_tokens=False)["input_ids"]
    for cont, score in zip(conts, got):
        if not cont:
            assert score == float("-inf")
            continue
        c = tok(cont, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(tiny_lm.model(torch.tensor([p + c])).logits[0, :-1], -1)
        manual = logp[torch.arange(len(p) - 1, len(p) + len(c) - 1), torch.tensor(c)].mean()
        assert score == pytest.approx(float(manual), abs=1e-4)


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
    examples = make_examples(docs, prefix_sentences=3, suffix_sentences=1, in_doc_negatives=2, examples_per_document=2)
    assert len(examples) == 40 and len({e.id for e in examples}) == 40
    for e in examples:
        assert e.suffix not in e.in_doc_negatives and len(e.in_doc_negatives) == 2
        assert all(n.startswith(f"sentence {e.doc_id[1:]}-") for n in e.in_doc_negatives)
        assert e.prefix.count(".") == 3
        cut = int(e.id.split("@")[1])
        assert e.prefix.endswith(f"-{cut - 1}.") and e.suffix == f"sentence {e.doc_id[1:]}-{cut}."
    # a document's cuts depend on the seed and its own id only, not on the other documents
    again = make_examples(docs[5:6], prefix_sentences=3, in_doc_negatives=2, examples_per_document=2)
    assert again == [e for e in examples if e.doc_id == "d5"]


def test_document_split_is_stable_and_disjoint():
    ids = [f"corpus:{i}" for i in range(4000)]
    splits = [document_split(d, 0.15, 0.1) for d in ids]
    assert splits == [document_split(d, 0.15, 0.1) for d in ids]
    held, dev = splits.count("held-out") / len(ids), splits.count("dev") / len(ids)
    assert 0.13 < held < 0.17 and 0.07 < dev < 0.1  # dev is 10% of the 85% that is not held out
    # raising the dev fraction moves documents from train to dev only: held-out never changes
    wider = [document_split(d, 0.15, 0.3) for d in ids]
    assert [s == "held-out" for s in wider] == [s == "held-out" for s in splits]
    assert all(w == "dev" for s, w in zip(splits, wider) if s == "dev")
    docs = [SourceDocument(d, ("a.",) * 5) for d in ids[:300]]
    parts = split_documents(docs, 0.15, 0.1)
    assert sum(len(v) for v in parts.values()) == 300
    assert not ({d.id for d in parts["train"]} & {d.id for d in parts["held-out"]})


def test_pysbd_sentences_and_the_first_sentence_end():
    from embedkit.generative.sentences import first_sentence_end, split_sentences

    text = "Smith et al. (2005) measured 1.8 microm2/ms at 28 wk. The value fell. Then"
    assert split_sentences(text) == ["Smith et al. (2005) measured 1.8 microm2/ms at 28 wk.", "The value fell.", "Then"]
    assert first_sentence_end(" The cat sat. The dog") == len(" The cat sat.")
    assert first_sentence_end("Smith et al. (2005) found") is None  # an abbreviation is not an end
    assert first_sentence_end("It ended.") is None  # nothing has begun after it yet


def test_corpus_sentences_are_split_once_and_cached(tmp_path, monkeypatch):
    import embedkit.generative.documents as documents

    corpus = tmp_path / "corpus.jsonl"
    rows = [{"_id": str(i), "title": "", "text": " ".join(f"Doc {i} has sentence {j}." for j in range(6))}
            for i in range(3)]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    docs = documents.corpus_documents(corpus)
    assert [d.id for d in docs] == ["corpus:0", "corpus:1", "corpus:2"] and len(docs[0].sentences) == 6
    monkeypatch.setattr(documents, "split_sentences", lambda text: pytest.fail("split again"))
    assert documents.corpus_documents(corpus) == docs
    assert documents.corpus_documents(corpus, min_sentences=7) == []


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
    from embedkit.generative.metrics import distinct_n, rep_n

    assert rep_n(["a b a b a b"], 2) == pytest.approx(1 - 2 / 5)
    assert rep_n(["a b c d"], 2) == 0.0
    assert distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)


class _LengthListScorer:
    """Longer candidates score higher."""

    def score_candidate_lists(self, prefixes, candidates, show_progress=False):
        return [np.array([len(c) for c in options], dtype=float) for options in candidates]


def test_suffix_identification_per_kind_of_negative():
    from embedkit.generative.documents import Example
    from embedkit.generative.suffix_id import candidate_sets, suffix_identification

    examples = [Example("a", "d1", "p", "gold long", ("x", "yy")), Example("b", "d2", "q", "gold", ("x", "in-doc long")),
                Example("c", "d3", "r", "tie!", ("x", "y"))]
    lm = {"a": ["generated longer", "g"], "b": ["g", "h"], "c": ["abcd", "z"]}
    sets = candidate_sets(examples, lm, in_document=2, lm_generated=2)
    assert sets[0].candidates == ("gold long", "x", "yy", "generated longer", "g")
    result = suffix_identification(_LengthListScorer(), sets, per_prefix=True)
    assert result["hits_in_document"] == [1, 0, 1] and result["hits_lm_generated"] == [0, 1, 0]  # a tie is a miss
    assert result["hits_all"] == [0, 0, 0] and result["accuracy_in_document"] == pytest.approx(200 / 3)
    assert result["candidates_all"] == 5 and result["candidates_in_document"] == 3 and result["n_prefixes"] == 3
    # an example short of negatives is left out rather than scored on fewer candidates
    assert len(candidate_sets(examples, {"a": ["g"]}, in_document=1, lm_generated=1)) == 1


def test_lm_likelihood_scorer_prefers_what_the_lm_writes(tiny_lm):
    from embedkit.generative.lm_scorer import LMLikelihoodScorer

    lm = _end_biased_lm(tiny_lm)
    scorer = LMLikelihoodScorer(lm, max_prefix_tokens=32)
    sampled = sample_continuations(lm, ["the river flows"], 1, SamplingConfig(max_new_tokens=6), seed=0)[0][0]
    scores = scorer.score_candidates("the river flows", [sampled, "zebra quantum umbrella tax"])
    assert scores[0] > scores[1] + 10  # what this LM writes is far more likely to it than other words
    assert scores[0] == pytest.approx(continuation_logprobs(lm, "the river flows", [sampled])[0], abs=1e-5)
    lists = scorer.score_candidate_lists(["the river flows", "a cat"], [["x y", ""], ["z"]])
    assert [len(r) for r in lists] == [2, 1] and lists[0][1] == -np.inf


def test_rankgen_scorer_scores_lists_like_single_prefixes(tiny_scorer):
    lists = tiny_scorer.score_candidate_lists(["the river flows", "a cat"], [["into the sea", "a"], ["sat on"]])
    np.testing.assert_allclose(lists[0], tiny_scorer.score_candidates("the river flows", ["into the sea", "a"]),
                               rtol=1e-5)
    np.testing.assert_allclose(lists[1], tiny_scorer.score_candidates("a cat", ["sat on"]), rtol=1e-5)


def _end_biased_lm(tiny_lm, words=("the", "cat", "sat", ".")):
    """The tiny LM with its output bias pushed toward a few tokens, so that sampled text has sentence ends."""
    import torch

    lm = tiny_lm.model
    ids = [tiny_lm.tokenizer.convert_tokens_to_ids(w) for w in words]
    head = torch.nn.Linear(lm.lm_head.in_features, lm.lm_head.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(lm.lm_head.weight)
        head.bias.fill_(-30.0)
        head.bias[ids] = 0.0
    lm.lm_head = head
    return tiny_lm


def test_one_sentence_sampling_stops_and_cuts_at_the_first_sentence(tiny_lm):
    from embedkit.generative.sampling import decode, sample_token_continuations
    from embedkit.generative.sentences import split_sentences

    lm = _end_biased_lm(tiny_lm)
    config = SamplingConfig(max_new_tokens=12, max_prefix_tokens=32, one_sentence=True)
    context = lm.tokenizer("the river flows .", add_special_tokens=False)["input_ids"]
    rows = sample_token_continuations(lm, [context], 8, 12, config, seed=0)[0]
    free = sample_token_continuations(lm, [context], 8, 12, config.model_copy(update={"one_sentence": False}), seed=0)[0]
    assert any(c.finished for c in rows)
    for cut, whole in zip(rows, free):
        text = decode(lm, cut.ids)
        if cut.finished:  # one complete sentence, the head of what the same seed samples without stopping
            assert len(split_sentences(text)) == 1 and text.rstrip().endswith(".")
            assert whole.ids[:len(cut.ids)] == cut.ids
        else:
            assert len(split_sentences(text)) <= 1
    # a beam extending a partial continuation: the sentence is looked for across the old and new tokens
    old = lm.tokenizer("the cat", add_special_tokens=False)["input_ids"]
    ext = sample_token_continuations(lm, [context + old], 4, 12, config, seed=1, continued=[len(old)])[0]
    for c in ext:
        if c.finished:
            assert len(split_sentences(decode(lm, old + c.ids))) == 1


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
