"""The encode engine: texts to a float32 numpy array, one row per text, in input order.

What it does differently from ``SentenceTransformer.encode`` (and why it is faster on a CPU):

1. batches are cut from texts sorted by *token* count, not character count (less padding; see
   :mod:`embedkit.encoding.bucketing`);
2. the calling thread tokenises while worker threads run the forward passes, and on a CPU each worker
   runs its own batch with its own small torch thread team instead of one team over all cores (see
   :mod:`embedkit.encoding.threads` for why that matters on a loaded machine);
3. ``torch.inference_mode`` throughout;
4. on a CPU, freed activation buffers are reused from the heap instead of being mapped afresh for
   every batch (see :mod:`embedkit.heap`).

The forward pass is the model's own: ``model.preprocess`` tokenises (prompts, truncation, prompt
length for pooling that excludes the prompt) and ``model(features)`` runs every module, so pooling,
Dense and Normalize modules apply exactly as in ``model.encode``. Only models it ``understands`` come here;
:func:`embedkit.encoding.api.encode` hands the others to their own ``encode``.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Callable, Literal, Sequence

import numpy as np

from embedkit.encoding.backends import DEFAULT_BACKEND, model_for_backend
from embedkit.encoding.bucketing import plan_batches, token_lengths
from embedkit.encoding.pipeline import run_pipeline
from embedkit.encoding.threads import ThreadPlan
from embedkit.heap import reuse_freed_memory

Role = Literal["query", "document"]
_ROLE_PROMPT_NAMES = {"query": ("query",), "document": ("document", "passage", "corpus")}


def resolve_prompt(model, role: Role | None, prompt: str | None = None) -> str:
    """The text prepended to inputs: ``prompt`` if given, else the model's own prompt for ``role``."""
    if prompt is not None:
        return prompt
    if role is None:
        return ""
    prompts = getattr(model, "prompts", None) or {}
    for name in _ROLE_PROMPT_NAMES[role]:
        if name in prompts:
            return prompts[name]
    return ""


def understands(model) -> bool:
    """Whether the engine can drive ``model``'s modules itself (else it calls ``model.encode``)."""
    try:
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.base.modules.router import Router
    except ImportError:  # an older sentence-transformers: its own encode is the safe path
        return False
    if not isinstance(model, SentenceTransformer) or not hasattr(model, "preprocess"):
        return False
    return not any(isinstance(module, Router) for module in model.children())


def model_device(model, device: str | None):
    import torch

    if device is not None:
        return torch.device(device)
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


class _Rows:
    """The output array, allocated when the first batch tells its width (workers write concurrently)."""

    def __init__(self, n: int, out: np.ndarray | None = None):
        self.n = n
        self.array = out
        self._lock = threading.Lock()

    def write(self, rows: np.ndarray, embeddings: np.ndarray) -> None:
        if self.array is None:
            with self._lock:
                if self.array is None:
                    self.array = np.empty((self.n, embeddings.shape[1]), dtype=np.float32)
        self.array[rows] = embeddings


def _forward_fn(runner, device, normalize: bool, truncate_dim: int | None) -> Callable:
    import torch
    from sentence_transformers.util import batch_to_device

    def forward(features) -> np.ndarray:
        output = runner(batch_to_device(features, device))["sentence_embedding"]
        if truncate_dim is not None:  # Matryoshka truncation (load_model(dim=)): cut, then renormalise
            output = output[:, :truncate_dim]
        if normalize or truncate_dim is not None:
            output = torch.nn.functional.normalize(output, p=2, dim=1)
        return output.float().cpu().numpy()

    return forward


def encode_into(
    model,
    texts: Sequence[str],
    *,
    prompt: str = "",
    batch_size: int = 32,
    normalize: bool = False,
    device: str | None = None,
    backend: str = DEFAULT_BACKEND,
    workers: int | None = None,
    threads: int | None = None,
    out: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """The engine proper: embed ``texts`` (non-empty) with the full prompt and the backend already resolved
    (``auto`` is resolved above, by :func:`embedkit.encoding.auto.resolve_backend`, whose calibration runs this).

    Writes into ``out`` (``len(texts)`` rows) when given, e.g. a window of a memory-mapped file, and
    returns the array written. ``workers``/``threads`` override the thread plan (see ThreadPlan).
    """
    target = model_device(model, device)
    plan = ThreadPlan.for_device(target.type, workers, threads)
    runner = model_for_backend(model, backend, target.type, plan.threads, plan.workers)
    if runner is model and device is not None and model_device(model, None) != target:
        model.to(target)
    runner.eval()
    lengths = token_lengths(model, texts)
    batches = plan_batches(lengths, batch_size)
    prompt_arg = prompt or None

    def prepare(rows: np.ndarray):
        return model.preprocess([texts[i] for i in rows], prompt=prompt_arg)

    rows_out = _Rows(len(texts), out)
    forward = _forward_fn(runner, target, normalize, getattr(model, "truncate_dim", None))
    # Long texts allocate attention buffers larger than glibc's mmap threshold every batch (embedkit.heap).
    with reuse_freed_memory() if target.type == "cpu" else contextlib.nullcontext():
        run_pipeline((b.rows for b in batches), prepare, forward, rows_out.write, plan, progress)
    return rows_out.array
