"""The LM's own score for a continuation, as a third suffix-identification scorer beside the untrained
encoder and the trained RankGen scorer: the mean per-token log-probability of the continuation given
the prefix (length-normalised, so a longer candidate is not penalised for having more tokens).

RankGen's argument is that this score prefers what the LM itself would write (including repeating
the prefix) over the true continuation; suffix identification with LM-generated negatives measures it.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from embedkit.generative.lm import CausalLM, load_causal_lm
from embedkit.generative.sampling import continuation_logprobs


class LMLikelihoodScorer:
    """``score(prefix, continuation)`` = mean log p(continuation token | prefix, earlier tokens)."""

    def __init__(self, lm: CausalLM, max_prefix_tokens: int = 256, batch_size: int = 8):
        self.lm, self.max_prefix_tokens, self.batch_size = lm, max_prefix_tokens, batch_size

    def score_candidate_lists(self, prefixes: Sequence[str], candidates: Sequence[Sequence[str]],
                              show_progress: bool = False) -> list[np.ndarray]:
        from tqdm.auto import tqdm

        return [np.asarray(continuation_logprobs(self.lm, prefix, list(options), self.max_prefix_tokens,
                                                 self.batch_size), dtype=np.float32)
                for prefix, options in tqdm(list(zip(prefixes, candidates)), desc="LM likelihood", unit="prefix",
                                            disable=not show_progress)]

    def score_candidates(self, prefix: str, candidates: Sequence[str]) -> np.ndarray:
        return self.score_candidate_lists([prefix], [candidates])[0]


def load_lm_scorer(name_or_path: str | os.PathLike = "default", max_prefix_tokens: int = 256,
                   device: str | None = None) -> LMLikelihoodScorer:
    return LMLikelihoodScorer(load_causal_lm(name_or_path, device=device), max_prefix_tokens)
