"""OpenVINO backends: the model's ONNX export (:mod:`embedkit.encoding.onnx_backend`, every module of the
SentenceTransformer) converted to OpenVINO's format and run by its CPU plugin, in float32 (``openvino``)
or quantised to int8 (``openvino-int8``).

The int8 model is NNCF's post-training quantisation for transformers (``ModelType.TRANSFORMER``: weights
per channel, activations per tensor, ranges calibrated on real sentences), so matrix products take int8
inputs on both sides; OpenVINO runs them with VNNI or AMX-INT8 where the CPU has them. The calibration set
is a few hundred local sentences, offline: the first ``CALIBRATION_SIZE`` lines of the file named by
``EMBEDKIT_CALIBRATION``, or else of the Wikipedia sentences in the data folder
(``$EMBEDKIT_DATA/wiki/*.txt``; neither STS-B nor SciFact, so no evaluation set is seen). Its hash is part
of the int8 file's name and of the embedding-cache key, so another calibration set never reuses the files
or embeddings of an earlier one.

``openvino`` runs with ``INFERENCE_PRECISION_HINT=f32``: on a CPU with AMX or AVX-512-BF16 OpenVINO would
otherwise run the float ops in bf16, and it would no longer give the model's own embeddings. ``openvino-int8``
is approximate anyway, so there its float ops (attention scores, softmax, layer norms, the int8 products'
outputs) run in bf16 on such a CPU (:func:`int8_precision`): on all 5,183 SciFact abstracts (about 240
tokens each) they are most of what is left once the products are int8, and in f32 they kept the backend
below sentence-transformers' own OpenVINO int8 model, which OpenVINO runs in bf16 by default.
The precision is part of the int8 variant (:func:`int8_variant`), so cached embeddings of one are never
served for the other.

Why not sentence-transformers' own ``backend="openvino"``: it needs ``optimum-intel`` (which pins older
transformers than embedkit's), exports the transformer only and calibrates int8 on a hub data set;
here the export is of the loaded model as it stands and needs only ``openvino`` and ``nncf``
(``pip install embedkit[openvino]``). Files are cached under ``$EMBEDKIT_CACHE/openvino/<weights fingerprint>``.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import weakref
from functools import lru_cache
from pathlib import Path

import numpy as np

from embedkit.errors import ConfigError

GRAPH_VERSION = "v1"  # change when the conversion or the quantisation changes, so old files are not reused
CALIBRATION_SIZE = 300
_CONFIG = {"PERFORMANCE_HINT": "THROUGHPUT"}
_runners: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _require_openvino(int8: bool = False):
    try:
        import openvino

        if int8:
            import nncf  # noqa: F401
    except ImportError:
        raise ConfigError("the openvino backends need openvino (and nncf for int8): pip install 'embedkit[openvino]'") \
            from None
    return openvino


def calibration_file() -> Path:
    """The sentences the int8 model is calibrated on (see the module docstring)."""
    from embedkit.paths import data_dir

    named = os.environ.get("EMBEDKIT_CALIBRATION")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"EMBEDKIT_CALIBRATION={named}: no such file (one calibration sentence a line)")
        return path
    found = sorted((data_dir() / "wiki").glob("*.txt"))
    if not found:
        raise ConfigError("openvino-int8 calibrates on a few hundred local sentences: set EMBEDKIT_CALIBRATION to a "
                          f"text file (one sentence a line), or put the data folder's wiki/ under {data_dir()}")
    return found[0]


@lru_cache(maxsize=4)
def _calibration(path: Path, mtime: float) -> tuple[tuple[str, ...], str]:
    texts = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                texts.append(line.strip())
            if len(texts) == CALIBRATION_SIZE:
                break
    if not texts:
        raise ConfigError(f"{path}: no calibration sentences (empty file)")
    digest = hashlib.sha256("\n".join(texts).encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return tuple(texts), digest


def calibration_texts() -> tuple[tuple[str, ...], str]:
    """The calibration sentences and their hash."""
    path = calibration_file()
    return _calibration(path, path.stat().st_mtime)


def int8_precision() -> str:
    """The precision ``openvino-int8`` runs its float ops in: bf16 where the CPU has bf16 hardware."""
    from embedkit.machine import cpu_info

    return "bf16" if cpu_info().bf16 else "f32"


def int8_variant() -> str:
    """What tells one int8 model's embeddings from another's for the same weights: graph version,
    calibration hash and the precision of its float ops."""
    return f"{GRAPH_VERSION}-{calibration_texts()[1]}-{int8_precision()}"


def _write_folder(target: Path, write) -> None:
    """Write ``model.xml``/``model.bin`` into a temporary folder beside ``target``, then move it into place
    (another process that got there first wins; its files are the same)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        write(tmp / "model.xml")
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "model.xml").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _calibration_items(model, names: list[str], texts) -> list[dict]:
    items = []
    for text in texts:  # one sentence per item: every range NNCF sees comes from real, unpadded tokens
        features = model.preprocess([text])
        items.append({name: features[name].cpu().numpy() for name in names})
    return items


def openvino_file(model, backend: str) -> tuple[Path, list[str]]:
    """The cached OpenVINO model (``model.xml``) for ``model`` and ``backend``, made on first use, and its inputs."""
    from embedkit.encoding.onnx_backend import onnx_file
    from embedkit.models import model_fingerprint

    ov = _require_openvino(int8=backend == "openvino-int8")
    from embedkit.paths import cache_dir

    texts, digest = calibration_texts() if backend == "openvino-int8" else ((), "")  # fail before exporting
    folder = cache_dir() / "openvino" / model_fingerprint(model)
    onnx_path, names = onnx_file(model, "onnx")
    fp32 = folder / f"fp32-{GRAPH_VERSION}"
    if not (fp32 / "model.xml").exists():
        _write_folder(fp32, lambda path: ov.save_model(ov.convert_model(str(onnx_path)), str(path),
                                                       compress_to_fp16=False))
    if backend == "openvino":
        return fp32 / "model.xml", names
    int8 = folder / f"int8-{GRAPH_VERSION}-{digest}"
    if not (int8 / "model.xml").exists():
        import nncf

        def quantise(path: Path) -> None:
            source = ov.Core().read_model(str(fp32 / "model.xml"))
            dataset = nncf.Dataset(_calibration_items(model, names, texts))
            quantised = nncf.quantize(source, dataset, model_type=nncf.ModelType.TRANSFORMER,
                                      subset_size=len(texts))
            ov.save_model(quantised, str(path), compress_to_fp16=False)

        _write_folder(int8, quantise)
    return int8 / "model.xml", names


class OpenvinoRunner:
    """Callable like the model on features: returns ``{"sentence_embedding": tensor}``. Each calling thread
    has its own infer request; the compiled model runs ``workers`` of them at once with ``threads`` each."""

    def __init__(self, path: Path, names: list[str], threads: int, workers: int, precision: str):
        ov = _require_openvino()
        config = dict(_CONFIG, INFERENCE_PRECISION_HINT=precision, NUM_STREAMS=str(workers),
                      INFERENCE_NUM_THREADS=threads * workers)
        self.compiled = ov.Core().compile_model(str(path), "CPU", config)
        self.names = names
        self._local = threading.local()

    def __call__(self, features) -> dict:
        import torch

        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        inputs = {name: np.ascontiguousarray(features[name].cpu().numpy()) for name in self.names}
        output = request.infer(inputs)
        return {"sentence_embedding": torch.from_numpy(np.array(output[self.compiled.output(0)]))}

    def eval(self):
        return self


def openvino_runner(model, backend: str, threads: int, workers: int) -> OpenvinoRunner:
    """One compiled model per (model weights, backend, thread plan), reused across calls."""
    from embedkit.encoding.derived import weights_version

    key = (weights_version(model), backend, threads, workers)
    with _lock:
        cached = _runners.setdefault(model, {})
        if key not in cached:
            # only runners of other weights are stale: one per backend stays, since `auto`'s calibration
            # alternates openvino and openvino-int8 and would otherwise time a recompile in every round
            for stale in [k for k in cached if k[0] != key[0]]:
                del cached[stale]
            path, names = openvino_file(model, backend)
            precision = int8_precision() if backend == "openvino-int8" else "f32"
            cached[key] = OpenvinoRunner(path, names, threads, workers, precision)
        return cached[key]
