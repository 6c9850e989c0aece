"""Nucleus sampling, RankGen reranking and RankGen beam search on the same prefixes, with the true
continuation measured alongside as the reference.

For each prefix the LM samples ``samples`` continuations once: "nucleus" keeps the first sample (a
plain nucleus draw), "rankgen_rerank" the sample the scorer ranks first; "rankgen_beam" runs
:func:`embedkit.generative.beam.rankgen_beam_search`. Every method (and "gold", the document's own
continuation) is measured on repetition (rep-n), diversity across prefixes (distinct-n), length, the
RankGen score, the LM's own mean token log-probability, and how often its text out-scores the gold
continuation under RankGen (``above_gold``: a scorer that prefers generations over real text is being
gamed, not satisfied).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from embedkit.generative.beam import BeamConfig, rankgen_beam_search
from embedkit.generative.lm import CausalLM
from embedkit.generative.metrics import distinct_n, rep_n, words
from embedkit.generative.rankgen import RankGenScorer
from embedkit.generative.sampling import SamplingConfig, continuation_logprobs, sample_continuations


def describe(texts: Sequence[str], rankgen: Sequence[float], lm: Sequence[float], gold: Sequence[float]) -> dict:
    finite = [s for s in lm if np.isfinite(s)]
    return {"rep_2": 100 * rep_n(texts, 2), "rep_3": 100 * rep_n(texts, 3), "distinct_2": 100 * distinct_n(texts, 2),
            "distinct_3": 100 * distinct_n(texts, 3), "rankgen_score": float(np.mean(rankgen)),
            "above_gold": 100 * float(np.mean(np.asarray(rankgen) > np.asarray(gold))),
            "lm_logprob": float(np.mean(finite)) if finite else float("nan"),
            "words": float(np.mean([len(words(t)) for t in texts]))}


def compare_decoding(lm: CausalLM, scorer: RankGenScorer, prefixes: Sequence[str], golds: Sequence[str], samples: int,
                     sampling: SamplingConfig, beam: BeamConfig | None = None, seed: int = 0) -> dict:
    """``{method: metrics}`` for nucleus, rankgen_rerank, rankgen_beam (when ``beam``) and gold."""
    from tqdm.auto import tqdm

    drawn = sample_continuations(lm, list(prefixes), samples, sampling, seed=seed)
    picks: dict[str, list[str]] = {"gold": list(golds), "nucleus": [], "rankgen_rerank": []}
    if beam is not None:
        picks["rankgen_beam"] = []
    for i, (prefix, texts) in enumerate(tqdm(list(zip(prefixes, drawn)), desc="rerank / beam", unit="prefix")):
        scores = scorer.score_candidates(prefix, texts)
        picks["nucleus"].append(texts[0])
        picks["rankgen_rerank"].append(texts[int(np.argmax(scores))])
        if beam is not None:
            picks["rankgen_beam"].append(rankgen_beam_search(lm, scorer, prefix, beam, sampling, seed=seed + i)[0].text)
    methods = list(picks)
    rankgen = {m: [float(s) for s in scorer.score_pairs(prefixes, picks[m])] for m in methods}
    per_prefix = [continuation_logprobs(lm, p, [picks[m][i] for m in methods], sampling.max_prefix_tokens)
                  for i, p in enumerate(prefixes)]  # one pass over each prefix for all its picks
    lm_scores = {m: [row[j] for row in per_prefix] for j, m in enumerate(methods)}
    report = {m: describe(picks[m], rankgen[m], lm_scores[m], rankgen["gold"]) for m in methods}
    report["settings"] = {"prefixes": len(prefixes), "samples": samples, "lm": lm.name, "seed": seed,
                          **sampling.model_dump(), **({"beam": beam.model_dump()} if beam else {})}
    report["examples"] = [{"prefix": p[-300:], **{m: picks[m][i] for m in methods}}
                          for i, p in enumerate(prefixes[:3])]
    return report
