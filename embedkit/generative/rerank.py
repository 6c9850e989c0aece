"""Over-generate and rerank (RankGen, section 3): sample several continuations of a prefix from any
causal LM and order them by the RankGen score. Without a scorer it is plain nucleus sampling and the
samples keep their sampled order."""
from __future__ import annotations

from dataclasses import dataclass

from embedkit.generative.lm import CausalLM
from embedkit.generative.rankgen import RankGenScorer
from embedkit.generative.sampling import SamplingConfig, continuation_logprobs, sample_continuations


@dataclass
class Candidate:
    text: str
    lm_score: float  # mean per-token log-probability under the LM
    rankgen_score: float | None = None


def over_generate_and_rerank(lm: CausalLM, prefix: str, samples: int, sampling: SamplingConfig | None = None,
                             scorer: RankGenScorer | None = None, seed: int | None = None) -> list[Candidate]:
    """``samples`` nucleus samples, best RankGen score first (sampled order without ``scorer``)."""
    sampling = sampling or SamplingConfig()
    texts = sample_continuations(lm, [prefix], samples, sampling, seed=seed)[0]
    return score_candidates(lm, prefix, texts, scorer, sampling.max_prefix_tokens)


def score_candidates(lm: CausalLM, prefix: str, texts: list[str], scorer: RankGenScorer | None,
                     max_prefix_tokens: int = 256) -> list[Candidate]:
    lm_scores = continuation_logprobs(lm, prefix, texts, max_prefix_tokens=max_prefix_tokens)
    candidates = [Candidate(t, s) for t, s in zip(texts, lm_scores)]
    if scorer is None:
        return candidates
    for candidate, score in zip(candidates, scorer.score_candidates(prefix, texts)):
        candidate.rankgen_score = float(score)
    return sorted(candidates, key=lambda c: c.rankgen_score, reverse=True)
