"""ONNX Runtime backends: the whole SentenceTransformer (every module, pooling and Normalize included)
exported to ONNX once, then run by ONNX Runtime in float32 (``onnx``) or with int8 weights
(``onnx-int8``: ONNX Runtime's dynamic quantisation, per output channel).

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

import os
import tempfile
import threading
import warnings
import weakref
from pathlib import Path

import numpy as np

from embedkit.errors import ConfigError

ONNX_BACKENDS = ("onnx", "onnx-int8")
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

    features = model.preprocess(["an example sentence", "a second, somewhat longer example sentence"])
    names = []
    for key, value in features.items():
        if not isinstance(value, torch.Tensor):
            continue  # e.g. the modality tag, which the forward pass does not need
        if value.dim() != 2:
            raise ConfigError(f"the onnx backends cannot export this model: feature {key!r} is not (batch, tokens); "
                              "use --backend torch")
        names.append(key)
    return names


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
    example = model.preprocess(["an example sentence", "a second, somewhat longer example sentence"])
    dynamic = {name: {0: "batch", 1: "tokens"} for name in names} | {"sentence_embedding": {0: "batch"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, tuple(example[n] for n in names), tmp, input_names=names,
                              output_names=["sentence_embedding"], dynamic_axes=dynamic, dynamo=False,
                              opset_version=17)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        model.train(was_training)


def _quantise(source: Path, path: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        quantize_dynamic(str(source), tmp, weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def onnx_file(model, backend: str) -> tuple[Path, list[str]]:
    """The cached ONNX file for ``model`` and ``backend`` (exported/quantised on first use), and its inputs."""
    from embedkit.models import model_fingerprint
    from embedkit.paths import cache_dir

    _require_onnxruntime()
    names = _input_names(model)
    folder = cache_dir() / "onnx" / model_fingerprint(model)
    fp32 = folder / "model.onnx"
    if not fp32.exists():
        _export(model, names, fp32)
    if backend == "onnx":
        return fp32, names
    int8 = folder / "model.int8.onnx"
    if not int8.exists():
        _quantise(fp32, int8)
    return int8, names


class OnnxRunner:
    """Callable like the model on features: returns ``{"sentence_embedding": tensor}``. Thread-safe; each
    calling thread runs its own inference with ``threads`` intra-op threads."""

    def __init__(self, path: Path, names: list[str], threads: int):
        ort = _require_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = names

    def __call__(self, features) -> dict:
        import torch

        inputs = {name: np.ascontiguousarray(features[name].cpu().numpy()) for name in self.names}
        return {"sentence_embedding": torch.from_numpy(self.session.run(None, inputs)[0])}

    def eval(self):
        return self


def onnx_runner(model, backend: str, threads: int) -> OnnxRunner:
    """One ONNX Runtime session per (model weights, backend, threads), reused across calls."""
    from embedkit.encoding.backends import weights_version

    key = (weights_version(model), backend, threads)
    with _lock:
        cached = _sessions.setdefault(model, {})
        if key not in cached:
            cached.clear()  # the weights changed or another backend is asked for: drop old sessions
            path, names = onnx_file(model, backend)
            cached[key] = OnnxRunner(path, names, threads)
        return cached[key]
