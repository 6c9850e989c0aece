"""Shared fixtures: a tiny seeded random model (fast unit tests) and the real data folder (e2e tests)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def make_tiny_model_dir(path: Path, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    """Write a randomly initialised BERT (sentence-transformers layout, mean pooling) to ``path``."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from embedkit.models import default_model_path

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(default_model_path()))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=128)
    hf_dir = path / "hf"
    BertModel(config).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    transformer = models.Transformer(str(hf_dir), max_seq_length=64)
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean")
    st_dir = path / "st"
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(st_dir))
    return st_dir


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture()
def tiny_model(tiny_model_dir):
    from embedkit.models import load_model

    return load_model(str(tiny_model_dir), device="cpu")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets an empty embedding cache, so no test reads another's embeddings."""
    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "embedkit-cache"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder (EMBEDKIT_DATA, default ../shared/data); e2e tests skip without it."""
    from embedkit.paths import data_dir

    root = data_dir()
    if not (root / "stsb" / "sts-test.csv").exists():
        pytest.skip(f"shared data not found at {root}")
    return root
