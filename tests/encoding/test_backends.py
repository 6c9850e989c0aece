"""Backends: each runs, the exact ones match model.encode, the int8 ones stay close, bad names fail clearly."""
from __future__ import annotations

import numpy as np
import pytest

from embedkit.encoding import cached_encode, encode
from embedkit.errors import ConfigError

from encoding.encoding_helpers import min_cosine


def test_sentence_transformers_backend_is_model_encode(tiny_model, texts):
    assert np.allclose(encode(tiny_model, texts, backend="sentence-transformers"), tiny_model.encode(texts), atol=1e-6)


def test_torch_int8_backend_is_close(tiny_model, texts):
    out = encode(tiny_model, texts, backend="int8")
    assert out.shape == (len(texts), 32)
    assert min_cosine(out, tiny_model.encode(texts)) > 0.9


def test_int8_copy_follows_weight_changes(tiny_model, texts):
    import torch

    first = encode(tiny_model, texts[:5], backend="int8")
    with torch.no_grad():
        for p in tiny_model.parameters():
            p.mul_(1.5)  # in place, like an optimiser step
    assert not np.allclose(encode(tiny_model, texts[:5], backend="int8"), first)


def test_onnx_backends(tiny_model, texts):
    pytest.importorskip("onnxruntime")
    reference = tiny_model.encode(texts)
    assert min_cosine(encode(tiny_model, texts, backend="onnx"), reference) >= 0.9999
    assert min_cosine(encode(tiny_model, texts, backend="onnx-int8", workers=2), reference) > 0.9
    assert not tiny_model.training  # the export must not leave dropout on
    assert min_cosine(encode(tiny_model, texts), reference) >= 0.9999


def test_unknown_backend_is_a_config_error(tiny_model):
    with pytest.raises(ConfigError, match="unknown encode backend"):
        encode(tiny_model, ["a"], backend="tensorrt")


def test_cache_keeps_int8_apart(tiny_model, texts):
    exact = cached_encode(tiny_model, texts)
    int8 = cached_encode(tiny_model, texts, backend="int8")
    assert not np.allclose(exact, int8)
    assert np.array_equal(cached_encode(tiny_model, texts, backend="int8"), int8)


@pytest.mark.parametrize("backend", ["int8", "onnx", "onnx-int8"])
def test_backends_without_domain_routing_refuse_moe_models(tiny_model, backend):
    from embedkit.modules import routed, to_moe

    moe = to_moe(tiny_model, ["science", "news"])
    with routed(moe, "news"), pytest.raises(ConfigError) as info:
        encode(moe, ["a cat sleeps", "stock prices fell"], backend=backend)
    assert str(info.value) == (f"backend {backend!r} cannot route a mixture-of-experts model to its domain's "
                               "experts; use --backend torch")
    with routed(moe, "news"):  # the torch backend routes
        assert encode(moe, ["a cat sleeps"]).shape == (1, 32)


def _op_types(path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_onnx_int8_graph_has_fused_attention(tiny_model):
    """The export traces plain attention (then switched back on the model), which ONNX Runtime fuses and
    the quantiser turns into QAttention: the speed of ``onnx-int8`` on long inputs depends on it."""
    pytest.importorskip("onnxruntime")
    from embedkit.encoding.onnx_backend import onnx_file

    implementation = tiny_model[0].auto_model.config._attn_implementation
    path, _ = onnx_file(tiny_model, "onnx-int8")
    assert tiny_model[0].auto_model.config._attn_implementation == implementation
    assert "QAttention" in _op_types(path)
    assert path.name == "model.v2.int8.onnx"  # not the files of the unfused version (model.int8.onnx)


@pytest.mark.parametrize("failure", ["raises", "changes embeddings"])
def test_onnx_int8_falls_back_to_the_unfused_graph(tiny_model, texts, monkeypatch, failure):
    pytest.importorskip("onnxruntime")
    import onnxruntime.transformers.optimizer

    from embedkit.encoding import onnx_backend

    if failure == "raises":
        def broken(*args, **kwargs):
            raise RuntimeError("pattern not understood")
        monkeypatch.setattr(onnxruntime.transformers.optimizer, "optimize_model", broken)
    else:
        monkeypatch.setattr(onnx_backend, "_same_embeddings", lambda *args: False)
    path, _ = onnx_backend.onnx_file(tiny_model, "onnx-int8")
    assert "QAttention" not in _op_types(path)
    # no fused or temporary file left behind
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.v2.int8.onnx", "model.v2.onnx"]
    assert min_cosine(encode(tiny_model, texts, backend="onnx-int8"), tiny_model.encode(texts)) > 0.9
