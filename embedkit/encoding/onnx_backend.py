"""ONNX Runtime backends: the whole SentenceTransformer (every module, pooling and Normalize included)
exported to ONNX once, then run by ONNX Runtime in float32 (``onnx``) or with int8 weights
(``onnx-int8``: ONNX Runtime's transformer fusions, then its dynamic quantisation, per output channel).

What makes the int8 graph fast on long inputs (measured at one thread, AVX2 without VNNI, all-MiniLM-L6-v2
on SciFact abstracts of 256 tokens; about 1.2x the earlier plain export + quantisation, same closeness to
the float32 embeddings): the export traces the models' plain ("eager") attention, not PyTorch's
scaled-dot-product attention, whose traced form masks fully padded rows with IsNaN/Where passes over every
(batch, head, token, token) score; that plain pattern is what ONNX Runtime's BERT optimizer fuses into one
Attention node per layer, which the quantiser turns into QAttention (int8 Q/K/V projections, no separate
mask, softmax and transpose passes); and the sessions leave residual Add + LayerNormalization unfused,
as ONNX Runtime's CPU SkipLayerNormalization kernel took several times as long as the two ops it replaces.

Why not sentence-transformers' own ``backend="onnx"``: it needs ``optimum`` and a model exported on
load, and it exports the transformer only; here the export is of the loaded model as it stands
(including a model just trained in this process), is cached on disk under
``$EMBEDKIT_CACHE/onnx/<weights fingerprint>``, and needs only ``onnxruntime`` and ``onnx``
(``pip install embedkit[fast]``).

Inputs are the tensors ``model.preprocess`` returns with shape (batch, tokens); a model whose features
need more (e.g. the prompt length of a pooling that leaves the prompt out) is refused with a
ConfigError naming the feature.
"""
from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import warnings
import weakref
from pathlib import Path

import numpy as np

from embedkit.errors import ConfigError

# Part of the cached file names: change it whenever the export or the int8 graph changes, so that files
# written by an earlier version (v1: scaled-dot-product attention traced as is, no fusions) are not reused.
# The embedding cache keys onnx-int8 entries by it too (``backends.embedding_variant``).
GRAPH_VERSION = "v2"
# ONNX Runtime fusions left off in every session (see the module docstring for why).
_DISABLED_FUSIONS = ["SkipLayerNormFusion"]
_EXAMPLE = ["an example sentence", "a second, somewhat longer example sentence"]  # two lengths: padding traced
logger = logging.getLogger(__name__)
_sessions: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _require_onnxruntime():
    try:
        import onnx  # noqa: F401  (the quantiser needs it)
        import onnxruntime
    except ImportError:
        raise ConfigError("the onnx backends need onnxruntime and onnx: pip install 'embedkit[fast]'") from None
    return onnxruntime


def _input_names(model) -> list[str]:
    import torch

    features = model.preprocess(_EXAMPLE)
    names = []
    for key, value in features.items():
        if not isinstance(value, torch.Tensor):
            continue  # e.g. the modality tag, which the forward pass does not need
        if value.dim() != 2:
            raise ConfigError(f"the onnx backends cannot export this model: feature {key!r} is not (batch, tokens); "
                              "use --backend torch")
        names.append(key)
    return names


@contextlib.contextmanager
def _eager_attention(model):
    """Switch the model's transformers to their plain attention for the export, and back afterwards: the
    same numbers, but a traced pattern that ONNX Runtime can fuse and that skips the IsNaN/Where passes of
    traced scaled-dot-product attention. A module that cannot switch is exported as it is."""
    switched = []
    try:
        for module in model.modules():
            config = getattr(module, "config", None)
            current = getattr(config, "_attn_implementation", None)
            if current in (None, "eager") or not hasattr(module, "set_attn_implementation"):
                continue
            try:
                module.set_attn_implementation("eager")
            except (ValueError, TypeError, AttributeError, NotImplementedError):
                continue
            switched.append((module, current))
        yield
    finally:
        for module, implementation in reversed(switched):
            module.set_attn_implementation(implementation)


def _export(model, names: list[str], path: Path) -> None:
    import torch

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *tensors):
            return self.inner(dict(zip(names, tensors)))["sentence_embedding"]

    was_training = model.training
    wrapper = SentenceEmbedding(model).eval()  # export restores the wrapper's mode on the model: eval
    example = model.preprocess(_EXAMPLE)
    dynamic = {name: {0: "batch", 1: "tokens"} for name in names} | {"sentence_embedding": {0: "batch"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad(), _eager_attention(model):
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, tuple(example[n] for n in names), tmp, input_names=names,
                              output_names=["sentence_embedding"], dynamic_axes=dynamic, dynamo=False,
                              opset_version=17)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        model.train(was_training)


def _attention_shape(model) -> tuple[int, int]:
    """(attention heads, hidden size) of the model's first transformer, or (0, 0): the optimizer then reads
    them from the graph."""
    for module in model.modules():
        config = getattr(module, "config", None)
        heads, hidden = getattr(config, "num_attention_heads", None), getattr(config, "hidden_size", None)
        if isinstance(heads, int) and isinstance(hidden, int):
            return heads, hidden
    return 0, 0


def _session(path, threads: int = 1):
    ort = _require_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                                disabled_optimizers=_DISABLED_FUSIONS)


def _same_embeddings(first: Path, second: Path, feeds: dict) -> bool:
    """Whether two float32 graphs give the same embeddings (cosine >= 0.9999 per row) on ``feeds``."""
    a, b = (_session(path).run(None, feeds)[0] for path in (first, second))
    if a.shape != b.shape or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return False
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return bool(np.all(np.sum(a * b, axis=1) >= 0.9999 * norms))


def _fuse(source: Path, path: Path, model, names: list[str]) -> bool:
    """Write ``source`` with ONNX Runtime's BERT fusions (attention, GELU, LayerNorm) to ``path``, for the
    quantiser to turn each attention into one QAttention node. Residual + LayerNorm and bias + GELU stay
    unfused (their fused CPU kernels were slower), and so do the embeddings (no faster fused, and the
    quantiser would then quantise the embedding tables); the attention mask goes in as it is, not as
    lengths, so padding on either side works. The optimizer matches patterns, so a graph it got wrong must
    not be used: False, nothing kept, when the fused graph's embeddings differ from the export's on a
    padded example."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    heads, hidden = _attention_shape(model)
    options = FusionOptions("bert")
    options.enable_skip_layer_norm = options.enable_bias_skip_layer_norm = False
    options.enable_bias_gelu = options.enable_embed_layer_norm = False
    options.use_raw_attention_mask(True)
    try:
        fused = optimize_model(str(source), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0,
                               optimization_options=options)
        fused.save_model_to_file(str(path))
        example = model.preprocess(_EXAMPLE)
        feeds = {name: example[name].cpu().numpy() for name in names}
        if _same_embeddings(source, path, feeds):
            return True
        logger.warning("ONNX Runtime's fusions changed this model's embeddings; quantising it unfused")
    except Exception as error:  # a pattern the optimizer trips on: the unfused graph is still correct
        logger.warning("ONNX Runtime's fusions failed on this model (%s); quantising it unfused", error)
    path.unlink(missing_ok=True)
    return False


def _quantise(source: Path, path: Path, model, names: list[str]) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
    os.close(fd)
    fused = Path(tmp).with_suffix(".fused.onnx")
    try:
        graph = fused if _fuse(source, fused, model, names) else source
        quantize_dynamic(str(graph), tmp, weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        fused.unlink(missing_ok=True)


def onnx_file(model, backend: str) -> tuple[Path, list[str]]:
    """The cached ONNX file for ``model`` and ``backend`` (exported/quantised on first use), and its inputs."""
    from embedkit.models import model_fingerprint
    from embedkit.paths import cache_dir

    _require_onnxruntime()
    names = _input_names(model)
    folder = cache_dir() / "onnx" / model_fingerprint(model)
    fp32 = folder / f"model.{GRAPH_VERSION}.onnx"
    if not fp32.exists():
        _export(model, names, fp32)
    if backend == "onnx":
        return fp32, names
    int8 = folder / f"model.{GRAPH_VERSION}.int8.onnx"
    if not int8.exists():
        _quantise(fp32, int8, model, names)
    return int8, names


class OnnxRunner:
    """Callable like the model on features: returns ``{"sentence_embedding": tensor}``. Thread-safe; each
    calling thread runs its own inference with ``threads`` intra-op threads."""

    def __init__(self, path: Path, names: list[str], threads: int):
        self.session = _session(path, threads)
        self.names = names

    def __call__(self, features) -> dict:
        import torch

        inputs = {name: np.ascontiguousarray(features[name].cpu().numpy()) for name in self.names}
        return {"sentence_embedding": torch.from_numpy(self.session.run(None, inputs)[0])}

    def eval(self):
        return self


def onnx_runner(model, backend: str, threads: int) -> OnnxRunner:
    """One ONNX Runtime session per (model weights, backend, threads), reused across calls."""
    from embedkit.encoding.derived import weights_version

    key = (weights_version(model), backend, threads)
    with _lock:
        cached = _sessions.setdefault(model, {})
        if key not in cached:
            for stale in [k for k in cached if k[0] != key[0]]:  # sessions of other weights; one per backend stays
                del cached[stale]
            path, names = onnx_file(model, backend)
            cached[key] = OnnxRunner(path, names, threads)
        return cached[key]
