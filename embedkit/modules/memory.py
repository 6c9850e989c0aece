"""A memory bank of earlier embeddings, one first-in-first-out queue per language (CCP).

Wu et al. 2022 (CCP, arXiv:2206.03281) add the embeddings of earlier batches as extra negatives, as
MoCo's queue does (He et al. 2020), but keep one queue per language: negatives from other languages
let the model tell candidates apart by language alone, and training collapses. The queues hold
detached copies in buffers, so no gradient ever flows into the bank. Hand-written: neither
sentence-transformers nor torch has a contrastive queue.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class LanguageMemoryBank(nn.Module):
    """Per language and per view (e.g. 0: positives, 1: anchors), the last ``size`` embeddings enqueued.

    Args:
        dim: embedding width.
        size: capacity of each queue; the oldest rows are dropped first.
        languages: the language names, in the order of the integer language ids used with the bank.
        views: how many aligned embedding columns each enqueue stores.
    """

    def __init__(self, dim: int, size: int, languages: Sequence[str], views: int = 1):
        super().__init__()
        if size < 1 or views < 1 or not languages:
            raise ValueError("size and views must be positive and languages non-empty")
        self.size, self.views, self.languages = size, views, list(languages)
        self.register_buffer("queue", torch.zeros(len(self.languages), views, size, dim))
        self.register_buffer("filled", torch.zeros(len(self.languages), dtype=torch.long))
        self.register_buffer("pointer", torch.zeros(len(self.languages), dtype=torch.long))

    def language_id(self, language: str) -> int:
        try:
            return self.languages.index(language)
        except ValueError:
            raise ValueError(f"unknown language {language!r}; the bank holds {', '.join(self.languages)}") from None

    @torch.no_grad()
    def enqueue(self, embeddings: Tensor | Sequence[Tensor], language_ids: Tensor) -> None:
        """Append each row to its language's queue (rows of one language keep their order)."""
        columns = [embeddings] if isinstance(embeddings, Tensor) else list(embeddings)
        if len(columns) != self.views:
            raise ValueError(f"the bank stores {self.views} view(s), got {len(columns)}")
        stacked = torch.stack([c.detach().to(self.queue.dtype) for c in columns], dim=0)  # (views, batch, dim)
        for language in torch.unique(language_ids).tolist():
            rows = stacked[:, (language_ids == language).nonzero().squeeze(1)][:, -self.size:]
            count = rows.size(1)
            start = int(self.pointer[language])
            slots = (torch.arange(count, device=rows.device) + start) % self.size
            self.queue[language][:, slots] = rows.to(self.queue.device)
            self.pointer[language] = (start + count) % self.size
            self.filled[language] = min(self.size, int(self.filled[language]) + count)

    def get(self, language: int, view: int = 0) -> Tensor:
        """The stored rows of one language and view, oldest first, ``(filled, dim)`` (no gradient)."""
        filled, pointer = int(self.filled[language]), int(self.pointer[language])
        rows = self.queue[language, view]
        if filled < self.size:
            return rows[:filled]
        return torch.cat([rows[pointer:], rows[:pointer]], dim=0)

    def clear(self) -> None:
        self.filled.zero_()
        self.pointer.zero_()
