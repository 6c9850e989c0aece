"""The model that actually runs for each ``backend`` of :func:`embedkit.encoding.encode`.

- ``torch`` (default): the SentenceTransformer itself, all its modules (pooling, Dense, Normalize...),
  in float32. Embeddings match ``model.encode`` (cosine >= 0.9999 for every text).
- ``int8``: a copy of the model whose ``nn.Linear`` layers are quantised to int8 with torch's dynamic
  quantisation (weights per output channel, activations per batch); CPU only. Faster, and slightly
  different embeddings: the measured quality cost is in ``benchmarks/README.md``.
- ``onnx`` / ``onnx-int8``: the model exported to ONNX and run by ONNX Runtime, in float32 or with
  int8 weights (see :mod:`embedkit.encoding.onnx_backend`); CPU only, needs ``embedkit[fast]``.
- ``sentence-transformers``: ``model.encode`` itself, the reference the benchmarks compare against.

The int8 copy is made once per model and reused until the model's weights change (a training step
bumps the parameters' version counters, which invalidates it).

Mixture-of-experts models (:mod:`embedkit.modules.moe`) run on ``torch`` and ``sentence-transformers``
only: their experts are chosen per call (``routed(model, domain)``, ``domain_ids``), and neither an ONNX
graph (traced with one route baked in) nor the cached int8 copy (which keeps the domain active when it
was made, and is not remade when the domain changes) follows that choice, so they are refused.
"""
from __future__ import annotations

import copy
import threading
import warnings
import weakref

from embedkit.errors import ConfigError

BACKENDS = ("torch", "int8", "onnx", "onnx-int8", "sentence-transformers")
CPU_ONLY = ("int8", "onnx", "onnx-int8")
ROUTING_BACKENDS = ("torch", "sentence-transformers")  # the ones that follow an MoE model's domain routing
DEFAULT_BACKEND = "torch"

_quantised: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_quantise_lock = threading.Lock()


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown encode backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def changes_embeddings(backend: str) -> bool:
    """Whether the backend's embeddings differ from the model's own (so caches must keep them apart)."""
    return check_backend(backend) in ("int8", "onnx-int8")


def embedding_variant(backend: str) -> str:
    """What cache keys must tell apart for this backend: '' where embeddings are the model's own, else the
    backend and, for onnx-int8, its graph version (a new int8 graph gives slightly different embeddings)."""
    if not changes_embeddings(backend):
        return ""
    if backend == "onnx-int8":
        from embedkit.encoding.onnx_backend import GRAPH_VERSION

        return f"{backend}/{GRAPH_VERSION}"
    return backend


def weights_version(model) -> tuple:
    return tuple((p.data_ptr(), p._version) for p in model.parameters())


def int8_model(model):
    """The dynamically int8-quantised copy of ``model`` (made on first use, cached while the weights stand)."""
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    version = weights_version(model)
    with _quantise_lock:
        cached = _quantised.get(model)
        if cached is not None and cached[0] == version:
            return cached[1]
        source = copy.deepcopy(model).to("cpu").eval()
        with warnings.catch_warnings():  # torch announces the move of eager quantisation to torchao
            warnings.simplefilter("ignore")
            quantised = quantize_dynamic(source, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
        _quantised[model] = (version, quantised)
        return quantised


def check_routing(model, backend: str) -> None:
    """Refuse a backend that cannot follow a mixture-of-experts model's domain routing (see above)."""
    from embedkit.modules import is_moe

    if backend not in ROUTING_BACKENDS and is_moe(model):
        raise ConfigError(f"backend {backend!r} cannot route a mixture-of-experts model to its domain's experts; "
                          "use --backend torch")


def model_for_backend(model, backend: str, device_type: str, threads: int):
    """What runs the forward passes for ``backend`` on a device of type ``device_type``: called on
    features, returns a dict with ``sentence_embedding`` (``threads``: intra-op threads per call)."""
    backend = check_backend(backend)
    check_routing(model, backend)
    if backend in CPU_ONLY and device_type != "cpu":
        raise ConfigError(f"backend {backend!r} runs on the CPU only, not on {device_type!r}; use --backend torch")
    if backend == "int8":
        return int8_model(model)
    if backend in ("onnx", "onnx-int8"):
        from embedkit.encoding.onnx_backend import onnx_runner

        return onnx_runner(model, backend, threads)
    return model
