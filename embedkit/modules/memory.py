"""A memory bank of earlier embeddings, one first-in-first-out queue per language (CCP).

Wu et al. 2022 (CCP, arXiv:2206.03281) add the embeddings of earlier batches as extra negatives, as
MoCo's queue does (He et al. 2020), but keep one queue per language: negatives from other languages
let the model tell candidates apart by language alone, and training collapses. The queues hold
detached copies in buffers, so no gradient ever flows into the bank. Each row may also carry the id of
the document it came from, so a loss can drop candidates from its anchor's own document (false
negatives: CCP's neighbouring sentences are related by construction). Hand-written: neither
sentence-transformers nor torch has a contrastive queue.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class LanguageMemoryBank(nn.Module):
    """Per language and per view (e.g. 0: positives, 1: anchors), the last ``size`` embeddings enqueued,
    with each row's document id (-1 where none was given).

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
        self.register_buffer("documents", torch.full((len(self.languages), size), -1, dtype=torch.long))
        self.register_buffer("filled", torch.zeros(len(self.languages), dtype=torch.long))
        self.register_buffer("pointer", torch.zeros(len(self.languages), dtype=torch.long))

    def language_id(self, language: str) -> int:
        try:
            return self.languages.index(language)
        except ValueError:
            raise ValueError(f"unknown language {language!r}; the bank holds {', '.join(self.languages)}") from None

    @torch.no_grad()
    def enqueue(self, embeddings: Tensor | Sequence[Tensor], language_ids: Tensor,
                document_ids: Tensor | None = None) -> None:
        """Append each row (and its document id, if given) to its language's queue; rows of one language
        keep their order."""
        columns = [embeddings] if isinstance(embeddings, Tensor) else list(embeddings)
        if len(columns) != self.views:
            raise ValueError(f"the bank stores {self.views} view(s), got {len(columns)}")
        stacked = torch.stack([c.detach().to(self.queue.dtype) for c in columns], dim=0)  # (views, batch, dim)
        if document_ids is None:
            document_ids = torch.full((stacked.size(1),), -1, dtype=torch.long)
        if document_ids.numel() != stacked.size(1):
            raise ValueError(f"{document_ids.numel()} document ids for {stacked.size(1)} rows")
        for language in torch.unique(language_ids).tolist():
            selected = (language_ids == language).nonzero().squeeze(1)
            rows = stacked[:, selected][:, -self.size:]
            documents = document_ids.to(selected.device)[selected][-self.size:]
            count = rows.size(1)
            start = int(self.pointer[language])
            slots = (torch.arange(count, device=rows.device) + start) % self.size
            self.queue[language][:, slots] = rows.to(self.queue.device)
            self.documents[language, slots.to(self.documents.device)] = documents.to(self.documents.device)
            self.pointer[language] = (start + count) % self.size
            self.filled[language] = min(self.size, int(self.filled[language]) + count)

    def get(self, language: int, view: int = 0) -> Tensor:
        """The stored rows of one language and view, oldest first, ``(filled, dim)`` (no gradient)."""
        filled, pointer = int(self.filled[language]), int(self.pointer[language])
        return self._oldest_first(self.queue[language, view], filled, pointer)

    def get_documents(self, language: int) -> Tensor:
        """The document ids of :meth:`get`'s rows, in the same order, ``(filled,)``."""
        return self._oldest_first(self.documents[language], int(self.filled[language]), int(self.pointer[language]))

    def _oldest_first(self, rows: Tensor, filled: int, pointer: int) -> Tensor:
        if filled < self.size:
            return rows[:filled]
        return torch.cat([rows[pointer:], rows[:pointer]], dim=0)

    def clear(self) -> None:
        self.filled.zero_()
        self.pointer.zero_()
