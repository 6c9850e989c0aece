"""Nucleus sampling versus RankGen reranking on the same prefixes and the same samples.

For each prefix the LM samples ``samples`` continuations once; "nucleus" keeps the first sample (a
plain nucleus draw), "rankgen" keeps the sample with the highest RankGen score. Both are measured on
repetition (rep-n), diversity across prefixes (distinct-n), RankGen score and the LM's own mean token
log-probability.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from embedkit.generative.lm import CausalLM
from embedkit.generative.metrics import distinct_n, rep_n, words
from embedkit.generative.rankgen import RankGenScorer
from embedkit.generative.rerank import score_candidates
from embedkit.generative.sampling import SamplingConfig, sample_continuations


def describe(texts: Sequence[str], rankgen: Sequence[float], lm: Sequence[float]) -> dict:
    finite = [s for s in lm if np.isfinite(s)]
    return {"rep_2": 100 * rep_n(texts, 2), "rep_3": 100 * rep_n(texts, 3), "distinct_2": 100 * distinct_n(texts, 2),
            "distinct_3": 100 * distinct_n(texts, 3), "rankgen_score": float(np.mean(rankgen)),
            "lm_logprob": float(np.mean(finite)) if finite else float("nan"),
            "words": float(np.mean([len(words(t)) for t in texts]))}


def compare_decoding(lm: CausalLM, scorer: RankGenScorer, prefixes: Sequence[str], samples: int,
                     sampling: SamplingConfig, seed: int = 0) -> dict:
    from tqdm.auto import tqdm

    drawn = sample_continuations(lm, list(prefixes), samples, sampling, seed=seed)
    picks = {"nucleus": ([], [], []), "rankgen_rerank": ([], [], [])}
    for prefix, texts in tqdm(list(zip(prefixes, drawn)), desc="score", unit="prefix"):
        candidates = score_candidates(lm, prefix, texts, scorer, sampling.max_prefix_tokens)
        first = next(c for c in candidates if c.text == texts[0])
        for name, c in (("nucleus", first), ("rankgen_rerank", candidates[0])):
            picks[name][0].append(c.text)
            picks[name][1].append(c.rankgen_score)
            picks[name][2].append(c.lm_score)
    report = {name: describe(*values) for name, values in picks.items()}
    report["settings"] = {"prefixes": len(prefixes), "samples": samples, "lm": lm.name, "seed": seed,
                          **sampling.model_dump()}
    report["examples"] = [{"prefix": p[-300:], "nucleus": n, "rankgen_rerank": r}
                          for p, n, r in list(zip(prefixes, picks["nucleus"][0], picks["rankgen_rerank"][0]))[:3]]
    return report
