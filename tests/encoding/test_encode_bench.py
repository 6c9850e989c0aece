"""benchmarks/encode_bench.py: sentence-transformers' model cast to bf16 as a row of its own."""

import numpy as np
import pytest
import torch

from helpers import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/encode_bench.py")


def test_the_bf16_cast_row_is_sentence_transformers_on_a_bf16_copy(bench, tiny_model, texts, monkeypatch):
    monkeypatch.setattr(bench, "MODEL_MAX_SEQ_LENGTH", tiny_model.max_seq_length)
    monkeypatch.setattr(bench, "CAST_MODELS", {})
    # compared with the other sentence-transformers rows, but run here like the float32 row, not in the peer venv
    assert bench.is_sentence_transformers("st-bf16") and not bench.is_peer("st-bf16")
    assert bench.is_peer("st-openvino-int8") and not bench.is_sentence_transformers("openvino-int8")
    float32 = bench.embed(tiny_model, texts, bench.ST, 16, None)
    cast = bench.embed(tiny_model, texts, "st-bf16", 16, None)
    assert cast.dtype == np.float32 and cast.shape == float32.shape
    cosines = np.sum(cast * float32, axis=1) / (np.linalg.norm(cast, axis=1) * np.linalg.norm(float32, axis=1))
    assert cosines.min() > 0.98 and not np.allclose(cast, float32, atol=1e-6)  # bf16 arithmetic, not float32
    assert bench.CAST_MODELS["st-bf16"][0].auto_model.dtype == torch.bfloat16
    assert next(tiny_model.parameters()).dtype == torch.float32  # the model the other rows use is left as it was
