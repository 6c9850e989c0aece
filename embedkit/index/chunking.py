"""Splitting long documents into overlapping token windows, so no text is lost to the model's max length.

Sentence-transformers models truncate their input (all-MiniLM-L6-v2 at 256 tokens): without chunking,
text past that point never reaches the vector. A chunk is a span of the original text (cut at token
boundaries through the tokenizer's character offsets), encoded with the document's title in front.
"""
from __future__ import annotations

from dataclasses import dataclass

from embedkit.data.records import full_text
from embedkit.errors import ConfigError


@dataclass(frozen=True)
class Passage:
    """What gets one vector: ``encoded`` is what the model sees, ``text`` what the index stores."""

    id: str
    encoded: str
    text: str
    title: str
    parent_id: str | None


class Chunker:
    """Cuts documents into windows of at most ``max_tokens`` model tokens, ``overlap`` tokens shared."""

    def __init__(self, model, max_tokens: int, overlap: int = 32):
        tokenizer = getattr(model, "tokenizer", None)
        if tokenizer is None or not getattr(tokenizer, "is_fast", False):
            raise ConfigError("chunking needs a model with a fast (Rust) tokenizer, for character offsets")
        limit = getattr(model, "max_seq_length", None) or max_tokens
        if max_tokens > limit:
            raise ConfigError(f"--chunk-tokens {max_tokens} is above the model's max length {limit}: the model "
                              "would cut every chunk; use at most that")
        if not 0 <= overlap < max_tokens // 2:
            raise ConfigError(f"--chunk-overlap must be in [0, {max_tokens // 2}), got {overlap}")
        if max_tokens < 16:
            raise ConfigError(f"--chunk-tokens must be at least 16, got {max_tokens}")
        self.tokenizer, self.max_tokens, self.overlap = tokenizer, max_tokens, overlap
        self.special = tokenizer.num_special_tokens_to_add(pair=False)

    def _count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def passages(self, doc_id: str, title: str, text: str) -> list[Passage]:
        """One passage when the document fits, else ``<id>#<n>`` chunks whose ``parent_id`` is ``doc_id``."""
        budget = self.max_tokens - self.special
        title_tokens = self._count(title) + 1 if title else 0
        window = budget - title_tokens
        if window < budget // 2:  # a title too long to repeat in every chunk is left out of the encoding
            window, title_for_encoding = budget, ""
        else:
            title_for_encoding = title
        encoding = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets, words = encoding["offset_mapping"], encoding.word_ids()
        n = len(offsets)
        if n <= window:
            return [Passage(doc_id, full_text(title, text), text, title, None)]

        def word_start(i: int, floor: int) -> int:
            """``i`` moved back to the first token of its word (not past ``floor``), so words stay whole."""
            while i > floor + 1 and words[i] is not None and words[i] == words[i - 1]:
                i -= 1
            return i

        out, start = [], 0
        while True:
            end = n if start + window >= n else word_start(start + window, start)
            piece = text[offsets[start][0]:offsets[end - 1][1]]
            out.append(Passage(f"{doc_id}#{len(out)}", full_text(title_for_encoding, piece), piece, title, doc_id))
            if end == n:
                return out
            start = max(word_start(end - self.overlap, start), start + 1)
