"""The RankGen scorer (Krishna et al., 2022, "RankGen: Improving Text Generation with Large Ranking
Models"): one encoder with shared weights embeds prefixes and continuations, told apart by the
paper's markers ``pre``/``suffi`` (stored as the sentence-transformers prompts ``prefix``/``suffix``),
and a (prefix, continuation) pair scores the dot product of the two vectors.

Any sentence-transformers model becomes a (not yet trained) RankGen scorer by adding the two
prompts; ``embedkit train training/rankgen-scifact.yaml`` trains one (``embedkit.generative.rankgen_train``).
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from embedkit.encoding import encode
from embedkit.models import load_model

PREFIX_PROMPT_NAME, SUFFIX_PROMPT_NAME = "prefix", "suffix"
PREFIX_MARKER, SUFFIX_MARKER = "pre ", "suffi "
MAX_PREFIX_WORDS = 160  # prefixes keep their last words: the encoder truncates on the right


def add_rankgen_prompts(model) -> None:
    """Give ``model`` the prefix/suffix markers (unless it has its own) and dot-product similarity."""
    prompts = dict(getattr(model, "prompts", None) or {})
    prompts.setdefault(PREFIX_PROMPT_NAME, PREFIX_MARKER)
    prompts.setdefault(SUFFIX_PROMPT_NAME, SUFFIX_MARKER)
    model.prompts = prompts
    if hasattr(model, "similarity_fn_name"):
        model.similarity_fn_name = "dot"


def prefix_tail(text: str, max_words: int = MAX_PREFIX_WORDS) -> str:
    words = text.split()
    return " ".join(words[-max_words:]) if len(words) > max_words else text.strip()


class RankGenScorer:
    """Scores continuations of a prefix: ``dot(embed(pre + prefix), embed(suffi + continuation))``."""

    def __init__(self, model, batch_size: int = 32):
        add_rankgen_prompts(model)
        self.model = model
        self.batch_size = batch_size

    def embed_prefixes(self, prefixes: Sequence[str], show_progress: bool = False) -> np.ndarray:
        return encode(self.model, [prefix_tail(p) for p in prefixes], prompt=self.model.prompts[PREFIX_PROMPT_NAME],
                      batch_size=self.batch_size, show_progress=show_progress)

    def embed_suffixes(self, suffixes: Sequence[str], show_progress: bool = False) -> np.ndarray:
        return encode(self.model, [s.strip() for s in suffixes], prompt=self.model.prompts[SUFFIX_PROMPT_NAME],
                      batch_size=self.batch_size, show_progress=show_progress)

    def score_pairs(self, prefixes: Sequence[str], suffixes: Sequence[str]) -> np.ndarray:
        """One score per (prefix, suffix) pair."""
        return np.einsum("ij,ij->i", self.embed_prefixes(prefixes), self.embed_suffixes(suffixes))

    def score_candidate_lists(self, prefixes: Sequence[str], candidates: Sequence[Sequence[str]],
                              show_progress: bool = False) -> list[np.ndarray]:
        """Scores of each prefix's candidate continuations (all texts embedded in large batches)."""
        flat = [c for options in candidates for c in options]
        if not flat:
            return [np.zeros(0, dtype=np.float32) for _ in prefixes]
        pre = self.embed_prefixes(prefixes, show_progress)
        suf = self.embed_suffixes(flat, show_progress)
        out, start = [], 0
        for row, options in enumerate(candidates):
            out.append(suf[start:start + len(options)] @ pre[row])
            start += len(options)
        return out

    def score_candidates(self, prefix: str, candidates: Sequence[str]) -> np.ndarray:
        """One score per candidate continuation of ``prefix``."""
        return self.score_candidate_lists([prefix], [candidates])[0]


def load_scorer(name_or_path: str | os.PathLike | None = "default", device: str | None = None) -> RankGenScorer:
    """A RankGen scorer from a trained RankGen folder, or any embedding model (untrained markers)."""
    return RankGenScorer(load_model(name_or_path, device=device))
