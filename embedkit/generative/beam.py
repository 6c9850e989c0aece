"""RankGen beam search (RankGen, section 3, Algorithm 1): every ``rescore_every`` tokens, each beam
is extended by ``samples_per_beam`` nucleus samples of that many tokens, every extension is scored by
RankGen against the prefix (the whole generation so far is the continuation), and the best
``beam_size`` survive. A beam that the LM ended (or, with ``one_sentence``, whose sentence ended)
stays a candidate without being extended.
"""
from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from embedkit.generative.lm import CausalLM
from embedkit.generative.rankgen import RankGenScorer
from embedkit.generative.rerank import Candidate, score_candidates
from embedkit.generative.sampling import SamplingConfig, decode, prefix_ids, sample_token_continuations


class BeamConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    beam_size: int = Field(2, ge=1)
    samples_per_beam: int = Field(4, ge=1)
    rescore_every: int = Field(16, ge=1)  # tokens generated between two RankGen rescorings


@dataclass
class _Beam:
    ids: list[int]
    finished: bool
    score: float = float("-inf")


def rankgen_beam_search(lm: CausalLM, scorer: RankGenScorer, prefix: str, beam: BeamConfig | None = None,
                        sampling: SamplingConfig | None = None, seed: int | None = None) -> list[Candidate]:
    """Generate up to ``sampling.max_new_tokens`` tokens; returns the final beams, best RankGen score first."""
    beam = beam or BeamConfig()
    sampling = sampling or SamplingConfig()
    context = prefix_ids(lm, prefix, sampling.max_prefix_tokens)
    beams = [_Beam([], False)]
    generated, step = 0, 0
    while generated < sampling.max_new_tokens and not all(b.finished for b in beams):
        n_tokens = min(beam.rescore_every, sampling.max_new_tokens - generated)
        open_beams = [b for b in beams if not b.finished]
        step_seed = None if seed is None else seed + step
        samples = sample_token_continuations(lm, [context + b.ids for b in open_beams], beam.samples_per_beam,
                                             n_tokens, sampling, seed=step_seed, continued=[len(b.ids) for b in open_beams])
        pool = [b for b in beams if b.finished]
        for parent, extensions in zip(open_beams, samples):
            pool.extend(_Beam(parent.ids + ext.ids, ext.finished) for ext in extensions)
        pool = _dedupe(pool)
        scores = scorer.score_candidates(prefix, [decode(lm, b.ids) for b in pool])
        for b, score in zip(pool, scores):
            b.score = float(score)
        beams = sorted(pool, key=lambda b: b.score, reverse=True)[:beam.beam_size]
        generated += n_tokens
        step += 1
    return score_candidates(lm, prefix, [decode(lm, b.ids) for b in beams], scorer, sampling.max_prefix_tokens)


def _dedupe(pool: list[_Beam]) -> list[_Beam]:
    seen, out = set(), []
    for b in pool:
        key = (tuple(b.ids), b.finished)
        if key not in seen:
            seen.add(key)
            out.append(b)
    return out
