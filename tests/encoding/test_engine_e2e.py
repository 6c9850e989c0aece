"""The default model on real STS-B sentences: the engine's embeddings equal sentence-transformers'."""
from __future__ import annotations

import pytest

from encoding.encoding_helpers import min_cosine
from embedkit.encoding import encode

pytestmark = pytest.mark.e2e


def test_default_model_matches_sentence_transformers_on_stsb(shared_data):
    from embedkit.models import load_model

    rows = [line.split("\t") for line in (shared_data / "stsb" / "sts-test.csv").read_text(encoding="utf-8").splitlines()]
    texts = [r[5] for r in rows[:100]] + [r[6] for r in rows[:100]]
    model = load_model(device="cpu")
    reference = model.encode(texts, batch_size=32)
    assert min_cosine(encode(model, texts, batch_size=32), reference) >= 0.9999
    assert min_cosine(encode(model, texts, batch_size=64, role="query", normalize=True), reference) >= 0.9999
