"""The engine gives model.encode's embeddings (cosine >= 0.9999 for every text) in input order."""
from __future__ import annotations

import numpy as np
import pytest

from embedkit.encoding import encode
from embedkit.encoding.bucketing import padding_fraction, plan_batches, token_lengths
from embedkit.errors import ConfigError

from encoding.encoding_helpers import min_cosine


def test_plan_batches_covers_every_row_once_longest_first():
    lengths = np.array([3, 9, 1, 9, 4, 7, 2])
    batches = plan_batches(lengths, 3)
    rows = np.concatenate([b.rows for b in batches])
    assert sorted(rows.tolist()) == list(range(7))
    assert [lengths[r] for r in rows] == sorted(lengths, reverse=True)
    assert [b.max_tokens for b in batches] == [9, 4, 1]
    with pytest.raises(ValueError):
        plan_batches(lengths, 0)


def test_token_sort_pads_less_than_character_sort(tiny_model, texts):
    lengths = token_lengths(tiny_model, texts)
    assert lengths.max() <= tiny_model.max_seq_length
    by_tokens = padding_fraction(lengths, plan_batches(lengths, 16))
    by_chars = plan_batches(np.array([len(t) for t in texts]), 16)  # sentence-transformers' order
    computed = sum(lengths[b.rows].max() * len(b.rows) for b in by_chars)
    assert by_tokens < 1 - lengths.sum() / computed


def test_engine_matches_model_encode_in_input_order(tiny_model, texts):
    reference = tiny_model.encode(texts, batch_size=16)
    for workers, threads in ((None, None), (1, 2), (3, 1)):
        out = encode(tiny_model, texts, batch_size=16, workers=workers, threads=threads)
        assert out.dtype == np.float32 and out.shape == reference.shape
        assert min_cosine(out, reference) >= 0.9999


def test_engine_matches_with_prompt_and_normalize(tiny_model, texts):
    tiny_model.prompts = {"query": "query: ", "document": "passage: "}
    reference = tiny_model.encode(texts, prompt="query: ", normalize_embeddings=True)
    out = encode(tiny_model, texts, role="query", normalize=True)
    assert min_cosine(out, reference) >= 0.9999
    assert np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    plain = encode(tiny_model, texts, normalize=True)
    assert min_cosine(plain, reference) < 0.9999  # the prompt really was applied


def test_engine_follows_pooling_without_prompt(tiny_model, texts):
    tiny_model[1].include_prompt = False  # pooling needs the prompt length that preprocess adds
    reference = tiny_model.encode(texts, prompt="query: ")
    assert min_cosine(encode(tiny_model, texts, prompt="query: "), reference) >= 0.9999


def test_empty_and_single_inputs(tiny_model):
    assert encode(tiny_model, []).shape == (0, 32)
    assert encode(tiny_model, ["one"]).shape == (1, 32)


def test_unknown_model_falls_back_to_its_encode():
    class OnlyEncode:  # like the GRACE causal-LM encoders: nothing but encode()
        def encode(self, texts, **kwargs):
            self.kwargs = kwargs
            return np.arange(len(texts) * 2, dtype=np.float64).reshape(len(texts), 2)

    model = OnlyEncode()
    out = encode(model, ["a", "b"], prompt="p: ", batch_size=7)
    assert out.dtype == np.float32 and out.tolist() == [[0, 1], [2, 3]]
    assert model.kwargs["prompt"] == "p: " and model.kwargs["batch_size"] == 7
    with pytest.raises(ConfigError):
        encode(model, ["a"], backend="onnx-int8")


def test_errors_in_forward_reach_the_caller(tiny_model, texts, monkeypatch):
    def broken(features):
        raise RuntimeError("boom")

    monkeypatch.setattr(tiny_model, "forward", broken)
    with pytest.raises(RuntimeError, match="boom"):
        encode(tiny_model, texts, batch_size=4, workers=2)


def test_caller_thread_count_is_restored(tiny_model, texts):
    import torch

    before = torch.get_num_threads()
    encode(tiny_model, texts, workers=2, threads=1)
    assert torch.get_num_threads() == before
