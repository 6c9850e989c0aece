"""``backend="auto"``: the fastest encode path for this CPU and model, chosen by a short calibration on the
machine and remembered.

Which paths are tried depends on the CPU (:func:`embedkit.machine.cpu_info`) and what is installed:

- always ``torch`` (float32, exact);
- ``bf16`` only where the CPU multiplies bf16 in hardware (AMX-BF16 or AVX-512-BF16): elsewhere torch
  emulates it and it is slower than float32;
- ``openvino`` (float32) and the int8 paths ``onnx-int8`` / ``openvino-int8`` where their libraries are
  installed (OpenVINO int8 also needs its calibration sentences). They are fastest with VNNI or AMX-INT8,
  but int8 was measured faster than float32 on AVX2 CPUs without VNNI too (benchmarks/README.md), so the
  calibration decides rather than a rule;
- on a GPU, or for a model the exported paths cannot run (no transformer first, mixture of experts), only
  ``torch``.

The calibration encodes the same fixed texts (``TIMING_TEXTS`` made from the model's vocabulary, short
sentences and passages of a few hundred tokens, the two kinds of text the benchmarks use) with each
candidate: an untimed first call (exports, quantises), then ``ROUNDS`` interleaved timed rounds, each
candidate's best round counting. It keeps a candidate only if its embeddings stay close to float32 on
those texts (mean cosine >= ``MIN_MEAN_COSINE``: a guard against a broken export, not a quality
measure; on this word salad MiniLM's int8 graphs score 0.98-0.99, on real text their quality stays within
0.5 points, see benchmarks/README.md), and picks one that changes embeddings only if it is
at least ``MIN_GAIN`` faster than the fastest exact one. It costs about a minute once (most of it the
int8 exports, which are cached for the backends' own later use).

The choice is written to ``$EMBEDKIT_CACHE/auto/<key>.json`` with what was measured (the record of what
``auto`` picked and why), keyed by the CPU (model, cores, flags), the model's architecture (parameter
names and shapes, token limit: the weights do not change the speed, so a fine-tuned model reuses its
base model's choice), the device and the backends' library versions. A file lock makes concurrent
processes (``encode --processes``) calibrate once and agree.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import random
import threading
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from embedkit.atomic import write_text_atomic
from embedkit.encoding.backends import AUTO, changes_embeddings, check_backend
from embedkit.encoding.engine import encode_into, model_device, understands
from embedkit.machine import CpuInfo, cpu_info

AUTO_VERSION = 5  # part of the key: change when the candidates, the rule, the timing or the file change
# (4: int8 ops in bf16; 5: the file names its version, so `embedkit info` can tell current choices)
TIMING_TEXTS = 48
ROUNDS = 2
MIN_MEAN_COSINE = 0.95
MIN_GAIN = 1.05
logger = logging.getLogger(__name__)
_chosen: dict[str, str] = {}
_lock = threading.Lock()


def _installed(*modules: str) -> bool:
    return all(find_spec(m) is not None for m in modules)


def _exportable(model) -> bool:
    """Whether the exported and bf16 paths can run this model: a transformer first, no expert routing."""
    from sentence_transformers.models import Transformer

    from embedkit.modules import is_moe

    return len(model) > 0 and isinstance(model[0], Transformer) and not is_moe(model)


def _openvino_int8_ready() -> bool:
    from embedkit.errors import ConfigError

    if not _installed("openvino", "nncf"):
        return False
    from embedkit.encoding.openvino_backend import calibration_texts

    try:
        calibration_texts()
    except ConfigError:
        return False
    return True


def candidates(cpu: CpuInfo, device_type: str, exportable: bool = True, installed=_installed,
               openvino_int8_ready=_openvino_int8_ready) -> list[str]:
    """The backends ``auto`` measures on this CPU, exact float32 first (see the module docstring)."""
    if device_type != "cpu" or not exportable:
        return ["torch"]
    found = ["torch"]
    if cpu.bf16:
        found.append("bf16")
    if installed("openvino"):
        found.append("openvino")
    if installed("onnxruntime", "onnx"):
        found.append("onnx-int8")
    if openvino_int8_ready():
        found.append("openvino-int8")
    return found


def choose(measured: dict[str, dict]) -> str:
    """The pick among calibration results ``{backend: {"texts_per_s", "mean_cosine"} or {"error"}}``: the
    fastest close enough to float32; one that changes embeddings must beat the fastest exact one by MIN_GAIN."""
    usable = {name: m for name, m in measured.items() if "error" not in m and m["mean_cosine"] >= MIN_MEAN_COSINE}
    exact = {name: m["texts_per_s"] for name, m in usable.items() if not changes_embeddings(name)}
    best_exact = max(exact, key=exact.get) if exact else "torch"
    pick, rate = best_exact, exact.get(best_exact, 0.0)
    for name, m in usable.items():
        if changes_embeddings(name) and m["texts_per_s"] > max(rate, MIN_GAIN * exact.get(best_exact, 0.0)):
            pick, rate = name, m["texts_per_s"]
    return pick


def timing_texts(model, n: int = TIMING_TEXTS, seed: int = 0) -> list[str]:
    """``n`` texts of words from the model's own vocabulary: half sentences of 8-24 words, half passages
    of 120-200 words (cut at the model's token limit), the same every time."""
    vocab = getattr(model.tokenizer, "get_vocab", dict)()
    words = sorted(w for w in vocab if w.isalpha() and len(w) > 2) or ["text"]
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(*((8, 24) if i % 2 else (120, 200)))))
            for i in range(n)]


def _architecture(model) -> str:
    h = hashlib.sha256()
    for name, tensor in model.named_parameters():
        h.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
    h.update(str(getattr(model, "max_seq_length", "")).encode())
    return h.hexdigest()[:16]


def _versions() -> dict:
    out = {}
    for name in ("torch", "onnxruntime", "openvino", "nncf"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def calibrate(model, names: list[str], device: str | None = None, texts: list[str] | None = None) -> dict[str, dict]:
    """Measure each backend in ``names`` on ``texts`` (default :func:`timing_texts`); see the module docstring."""
    texts = texts or timing_texts(model)
    reference = encode_into(model, texts, device=device, backend="torch")
    measured: dict[str, dict] = {}
    for name in names:  # first call: builds and caches each backend's files, untimed
        try:
            out = encode_into(model, texts, device=device, backend=name)
            cosines = _cosines(out, reference)
            measured[name] = {"mean_cosine": float(cosines.mean()), "min_cosine": float(cosines.min()),
                              "seconds": []}
        except Exception as error:  # a backend that cannot run this model is left out, and the reason kept
            measured[name] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"}
    for _ in range(ROUNDS):
        for name in names:
            if "error" in measured[name]:
                continue
            start = time.perf_counter()
            encode_into(model, texts, device=device, backend=name)
            measured[name]["seconds"].append(time.perf_counter() - start)
    for m in measured.values():
        if "seconds" in m:
            m["texts_per_s"] = len(texts) / min(m["seconds"])
    return measured


def choice_path(model, device_type: str, names: list[str]) -> Path:
    from embedkit.paths import cache_dir

    cpu = cpu_info()
    key = json.dumps([AUTO_VERSION, cpu.as_dict(), device_type, _architecture(model), names, _versions()],
                     sort_keys=True)
    return cache_dir() / "auto" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def _read_choice(path: Path) -> str | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))["backend"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def calibration_record(model, device: str | None = None) -> dict | None:
    """The calibration file behind ``auto``'s choice for ``model`` on ``device`` (None if none was needed or made)."""
    device_type = model_device(model, device).type
    names = candidates(cpu_info(), device_type, _exportable(model))
    try:
        return json.loads(choice_path(model, device_type, names).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def recorded_choices() -> list[dict]:
    """What ``auto`` chose on this machine as it is now: one entry (model, device, backend) per calibration
    file made on this CPU, with these library versions and this ``AUTO_VERSION``. Files from another CPU
    sharing the cache, from other versions or from an earlier ``auto`` are left out: ``auto`` does not
    read them here, it would calibrate again."""
    from embedkit.paths import cache_dir

    current = {"auto_version": AUTO_VERSION, "cpu": cpu_info().as_dict(), "versions": _versions()}
    out = []
    for path in sorted((cache_dir() / "auto").glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if all(record.get(field) == value for field, value in current.items()):
                out.append({"model": record["model"], "device": record["device"], "backend": record["backend"],
                            "path": str(path)})
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    return out


def auto_backend(model, device: str | None = None) -> str:
    """The backend ``auto`` stands for with this model on ``device`` (calibrating once, see the module docstring)."""
    from embedkit.models import model_name

    if not understands(model):
        return "torch"
    device_type = model_device(model, device).type
    names = candidates(cpu_info(), device_type, _exportable(model))
    if len(names) == 1:
        return names[0]
    path = choice_path(model, device_type, names)
    with _lock:
        if str(path) in _chosen:
            return _chosen[str(path)]
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process calibrating: wait for its answer
            pick = _read_choice(path)
            if pick is None:
                logger.warning("backend auto: measuring %s on this CPU once (cached in %s)", ", ".join(names), path)
                start = time.perf_counter()
                measured = calibrate(model, names, device)
                pick = choose(measured)
                write_text_atomic(path, json.dumps({
                    "backend": pick, "auto_version": AUTO_VERSION, "measured": measured, "candidates": names,
                    "model": model_name(model),
                    "cpu": cpu_info().as_dict(), "device": device_type, "versions": _versions(),
                    "calibration_seconds": round(time.perf_counter() - start, 1),
                    "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}, indent=2) + "\n")
        logger.info("backend auto -> %s (%s)", pick, path)
        _chosen[str(path)] = pick
        return pick


def resolve_backend(model, backend: str, device: str | None = None) -> str:
    """``backend`` itself, or for ``auto`` the backend chosen for this CPU and model (cached calibration)."""
    if check_backend(backend) != AUTO:
        return backend
    return auto_backend(model, device)
