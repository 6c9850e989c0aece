"""Tiny randomly initialised causal LMs (Llama layout) with the packaged MiniLM WordPiece tokenizer,
built offline in a second: [SEP] plays end-of-sequence, [PAD] padding."""
from __future__ import annotations

from pathlib import Path

import pytest


def make_tiny_lm_dir(path: Path, seed: int = 0, hidden: int = 32) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from embedkit.models import default_model_path

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(default_model_path()))
    tokenizer.eos_token, tokenizer.bos_token = "[SEP]", "[CLS]"
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory) -> Path:
    return make_tiny_lm_dir(tmp_path_factory.mktemp("tiny_lm"))


@pytest.fixture()
def tiny_lm(tiny_lm_dir):
    from embedkit.generative.lm import load_causal_lm

    return load_causal_lm(str(tiny_lm_dir), device="cpu")


@pytest.fixture()
def tiny_scorer(tiny_model_dir):
    from embedkit.generative.rankgen import load_scorer

    return load_scorer(str(tiny_model_dir), device="cpu")


class LengthScorer:
    """A stand-in RankGen scorer: longer continuations score higher (ties by text); counts its calls."""

    def __init__(self):
        self.calls = []

    def score_candidates(self, prefix, candidates):
        import numpy as np

        self.calls.append(list(candidates))
        return np.array([len(c) + 1e-3 * (hash(c) % 997) / 997 for c in candidates], dtype=np.float32)


@pytest.fixture()
def length_scorer():
    return LengthScorer()


@pytest.fixture()
def grace_settings(tiny_lm_dir):
    """Settings for a GRACE encoder on the tiny LM (short inputs and rationales, rank-4 LoRA)."""
    from embedkit.generative.grace import GraceSettings, LoraSettings

    return GraceSettings(base_lm=str(tiny_lm_dir), max_input_tokens=16, max_rationale_tokens=6,
                         lora=LoraSettings(r=4, alpha=8))
