"""Encode texts to a float32 numpy array, one row per text, in input order."""
from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

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
) -> np.ndarray:
    """Embed ``texts`` with ``model``; ``role`` picks the model's query/document prompt unless ``prompt`` is given."""
    texts = list(texts)
    if not texts:
        from embedkit.models import embedding_dim

        return np.zeros((0, embedding_dim(model) or 0), dtype=np.float32)
    import torch

    with torch.inference_mode():
        out = model.encode(
            texts,
            prompt=resolve_prompt(model, role, prompt),
            batch_size=batch_size,
            show_progress_bar=bool(show_progress) if show_progress is not None else len(texts) > 1000,
            convert_to_numpy=True,
            normalize_embeddings=normalize,
            device=device,
        )
    return np.ascontiguousarray(out, dtype=np.float32)
