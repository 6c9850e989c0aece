"""The ``bf16`` backend: the model's transformer in bfloat16, everything after it in float32.

The transformer (weights and activations) is a bfloat16 copy whose attention runs through torch's
``scaled_dot_product_attention``; its token embeddings are cast back to float32 before the model's own
pooling, Dense and Normalize modules, so averaging hundreds of tokens and the norm are not done in 8
mantissa bits. Why not ``torch.autocast`` around ``model.encode``: autocast casts weights on every call
and keeps float32 softmax/LayerNorm round trips (measured 1.1x on an AMX machine under load, against about
3x for bf16 ``nn.Linear`` alone).

Speed depends on the CPU: with AMX-BF16 (and to a lesser extent AVX-512-BF16) oneDNN runs bf16 matrix
products in hardware; on a CPU without them (AVX2 only) torch emulates bf16 products and the path is
slower than float32, so :mod:`embedkit.encoding.auto` only considers it where the CPU has bf16 hardware.
"""
from __future__ import annotations

import copy

from embedkit.errors import ConfigError


def _transformer(model):
    from sentence_transformers.models import Transformer

    first = model[0] if len(model) else None
    if not isinstance(first, Transformer):
        raise ConfigError(f"backend 'bf16' needs a transformer model; this one starts with {type(first).__name__}")
    return first


class Bf16Encoder:
    """Called like the model on features: the bf16 transformer, then the model's other modules in float32."""

    def __init__(self, model):
        import torch

        self.transformer = copy.deepcopy(_transformer(model)).to(torch.bfloat16).eval()
        inner = getattr(self.transformer, "auto_model", None)
        if hasattr(inner, "set_attn_implementation"):
            try:
                inner.set_attn_implementation("sdpa")
            except (ValueError, TypeError, NotImplementedError):  # an architecture without it keeps its own
                pass
        self.rest = list(model)[1:]  # the model's own float32 modules, shared, not copied

    def __call__(self, features) -> dict:
        import torch

        features = self.transformer(features)
        features = {key: value.float() if isinstance(value, torch.Tensor) and value.dtype == torch.bfloat16 else value
                    for key, value in features.items()}
        for module in self.rest:
            features = module(features)
        return features

    def eval(self):
        return self


def bf16_model(model) -> Bf16Encoder:
    """The bf16 encoder of ``model`` (made on first use, cached while the model's weights stand)."""
    from embedkit.encoding.derived import derived_copy

    return derived_copy(model, "bf16", Bf16Encoder)
