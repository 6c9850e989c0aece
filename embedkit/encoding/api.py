"""``encode``: the library's entry point for embedding texts with a model.

It resolves the prompt (the model's own for a ``role``) and the backend (``auto`` by its cached
calibration), draws the progress bar, and hands the texts to the engine (:mod:`embedkit.encoding.engine`),
or to the model's own ``encode`` for a model the engine does not drive: one that is not a
SentenceTransformer with ``preprocess`` (e.g. the GRACE causal-LM encoders, which only have ``encode``), or
that routes inputs by task (a ``Router`` module), or when the ``sentence-transformers`` backend is asked for.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from embedkit.encoding.auto import resolve_backend
from embedkit.encoding.backends import DEFAULT_BACKEND, check_backend
from embedkit.encoding.engine import Role, encode_into, resolve_prompt, understands


def _encode_with_model(model, texts: list[str], prompt: str, batch_size: int, normalize: bool, device: str | None,
                       show_progress: bool) -> np.ndarray:
    import torch

    with torch.inference_mode():
        out = model.encode(texts, prompt=prompt, batch_size=batch_size, show_progress_bar=show_progress,
                           convert_to_numpy=True, device=device,
                           normalize_embeddings=normalize or getattr(model, "truncate_dim", None) is not None)
    return np.ascontiguousarray(out, dtype=np.float32)


def encode(
    model,
    texts: Sequence[str],
    *,
    role: Role | None = None,
    prompt: str | None = None,
    batch_size: int = 32,
    normalize: bool = False,
    device: str | None = None,
    show_progress: bool | None = None,
    backend: str = DEFAULT_BACKEND,
    workers: int | None = None,
    threads: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Embed ``texts`` with ``model``; ``role`` picks the model's query/document prompt unless ``prompt`` is given.

    ``backend``: ``"torch"`` (default, same embeddings as ``model.encode``), ``"auto"`` (the fastest path
    for this CPU, chosen by a cached calibration), ``"onnx"`` / ``"openvino"`` (ONNX Runtime / OpenVINO,
    same embeddings), ``"bf16"``, ``"onnx-int8"`` / ``"openvino-int8"`` / ``"int8"`` (faster on CPUs with
    the instructions for them, slightly different embeddings) or ``"sentence-transformers"``
    (``model.encode`` itself); see :mod:`embedkit.encoding.backends`.
    ``workers``/``threads``: batches in flight and torch threads per batch (default: see
    :class:`embedkit.encoding.threads.ThreadPlan`).
    ``progress``: called with the number of texts each finished batch held, for a caller's own progress
    bar (none is drawn here then).
    """
    from tqdm.auto import tqdm

    check_backend(backend)
    texts = list(texts)
    full_prompt = resolve_prompt(model, role, prompt)
    show = bool(show_progress) if show_progress is not None else len(texts) > 1000
    if not texts:
        from embedkit.models import embedding_dim

        return np.zeros((0, embedding_dim(model) or 0), dtype=np.float32)
    backend = resolve_backend(model, backend, device)
    if backend == "sentence-transformers" or not understands(model):
        if backend not in ("torch", "sentence-transformers"):
            from embedkit.errors import ConfigError

            raise ConfigError(f"backend {backend!r} needs a SentenceTransformer model, got {type(model).__name__}")
        out = _encode_with_model(model, texts, full_prompt, batch_size, normalize, device, show and progress is None)
        if progress is not None:
            progress(len(texts))
        return out
    with tqdm(total=len(texts), desc="encode", unit="text", disable=not show or progress is not None) as bar:
        return encode_into(model, texts, prompt=full_prompt, batch_size=batch_size, normalize=normalize,
                           device=device, backend=backend, workers=workers, threads=threads,
                           progress=progress or bar.update)
