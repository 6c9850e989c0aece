"""The model that actually runs for each ``backend`` of :func:`embedkit.encoding.encode`.

- ``torch`` (default): the SentenceTransformer itself, all its modules (pooling, Dense, Normalize...),
  in float32. Embeddings match ``model.encode`` (cosine >= 0.9999 for every text). The default wherever
  exact embeddings are needed (the library's ``encode``, caches, indexes, evaluation).
- ``auto``: the fastest of the paths below for this CPU and model, chosen once by a short calibration on
  the machine and cached (see :mod:`embedkit.encoding.auto`); the default of ``embedkit encode``.
- ``bf16``: the transformer in bfloat16 (weights and activations, attention through
  ``scaled_dot_product_attention``), pooling and normalisation in float32 (see
  :mod:`embedkit.encoding.bf16`). Fast only where the CPU multiplies bf16 in hardware (AMX, AVX-512-BF16).
- ``int8``: a copy of the model whose ``nn.Linear`` layers are quantised to int8 with torch's dynamic
  quantisation (weights per output channel, activations per batch); CPU only.
- ``onnx`` / ``onnx-int8``: the model exported to ONNX and run by ONNX Runtime, in float32 or with
  int8 weights (see :mod:`embedkit.encoding.onnx_backend`); CPU only, needs ``embedkit[fast]``.
- ``openvino`` / ``openvino-int8``: the same export run by OpenVINO, in float32 or statically quantised
  to int8 with NNCF on a few hundred local calibration sentences (see
  :mod:`embedkit.encoding.openvino_backend`); CPU only, needs ``embedkit[openvino]``.
- ``sentence-transformers``: ``model.encode`` itself, the reference the benchmarks compare against.

``bf16`` and the int8 backends give slightly different embeddings: the measured quality cost is in
``benchmarks/README.md``. The bf16 and torch-int8 copies are made once per model and reused until the
model's weights change (:mod:`embedkit.encoding.derived`).

Mixture-of-experts models (:mod:`embedkit.modules.moe`) run on ``torch`` and ``sentence-transformers``
only: their experts are chosen per call (``routed(model, domain)``, ``domain_ids``), and neither an
exported graph (traced with one route baked in) nor a cached copy (which keeps the domain active when it
was made, and is not remade when the domain changes) follows that choice, so they are refused.
"""
from __future__ import annotations

import copy
import warnings

from embedkit.encoding.derived import derived_copy
from embedkit.errors import ConfigError

AUTO = "auto"
BACKENDS = (AUTO, "torch", "bf16", "int8", "onnx", "onnx-int8", "openvino", "openvino-int8", "sentence-transformers")
CPU_ONLY = ("int8", "onnx", "onnx-int8", "openvino", "openvino-int8")
ROUTING_BACKENDS = ("torch", "sentence-transformers")  # the ones that follow an MoE model's domain routing
CHANGES_EMBEDDINGS = ("bf16", "int8", "onnx-int8", "openvino-int8")
DEFAULT_BACKEND = "torch"

def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown encode backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def changes_embeddings(backend: str) -> bool:
    """Whether the backend's embeddings differ from the model's own float32 ones."""
    return check_backend(backend) in CHANGES_EMBEDDINGS


def embedding_variant(backend: str) -> str:
    """What cache keys and indexes record for a (resolved, not ``auto``) backend: its name, and for the
    int8 graphs their version (a new graph or calibration gives slightly different embeddings)."""
    if check_backend(backend) == AUTO:
        raise ValueError("resolve 'auto' to a backend first (resolve_backend)")
    if backend == "onnx-int8":
        from embedkit.encoding.onnx_backend import GRAPH_VERSION

        return f"{backend}/{GRAPH_VERSION}"
    if backend == "openvino-int8":
        from embedkit.encoding.openvino_backend import int8_variant

        return f"{backend}/{int8_variant()}"
    return backend


def installed_backends() -> dict[str, str]:
    """Each backend and "yes", or what it is missing (a package to install, or hardware it would be slow without)."""
    from importlib.util import find_spec

    from embedkit.machine import cpu_info

    def needs(*modules: str, extra: str) -> str:
        missing = [m for m in modules if find_spec(m) is None]
        return f"pip install 'embedkit[{extra}]'" if missing else "yes"

    return {"torch": "yes", "auto": "yes",
            "bf16": "yes" if cpu_info().bf16 else "yes, but slow: no AMX-BF16 or AVX-512-BF16 on this CPU",
            "int8": "yes", "onnx": needs("onnxruntime", "onnx", extra="fast"),
            "onnx-int8": needs("onnxruntime", "onnx", extra="fast"), "openvino": needs("openvino", extra="openvino"),
            "openvino-int8": needs("openvino", "nncf", extra="openvino"), "sentence-transformers": "yes"}


def _quantise_int8(model):
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    source = copy.deepcopy(model).to("cpu").eval()
    with warnings.catch_warnings():  # torch announces the move of eager quantisation to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(source, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)


def int8_model(model):
    """The dynamically int8-quantised copy of ``model`` (made on first use, cached while the weights stand)."""
    return derived_copy(model, "int8", _quantise_int8)


def check_routing(model, backend: str) -> None:
    """Refuse a backend that cannot follow a mixture-of-experts model's domain routing (see above)."""
    from embedkit.modules import is_moe

    if backend not in ROUTING_BACKENDS and is_moe(model):
        raise ConfigError(f"backend {backend!r} cannot route a mixture-of-experts model to its domain's experts; "
                          "use --backend torch")


def model_for_backend(model, backend: str, device_type: str, threads: int, workers: int = 1):
    """What runs the forward passes for a resolved ``backend`` on a device of type ``device_type``: called on
    features, returns a dict with ``sentence_embedding`` (``threads``: intra-op threads per call, ``workers``:
    calls in flight at once)."""
    backend = check_backend(backend)
    if backend == AUTO:
        raise ValueError("resolve 'auto' to a backend first (resolve_backend)")
    check_routing(model, backend)
    if backend in CPU_ONLY and device_type != "cpu":
        raise ConfigError(f"backend {backend!r} runs on the CPU only, not on {device_type!r}; use --backend torch")
    if backend == "int8":
        return int8_model(model)
    if backend == "bf16":
        from embedkit.encoding.bf16 import bf16_model

        return bf16_model(model)
    if backend in ("onnx", "onnx-int8"):
        from embedkit.encoding.onnx_backend import onnx_runner

        return onnx_runner(model, backend, threads)
    if backend in ("openvino", "openvino-int8"):
        from embedkit.encoding.openvino_backend import openvino_runner

        return openvino_runner(model, backend, threads, workers)
    return model
