"""Suffix identification (RankGen, section 4): for each held-out prefix, does a scorer rank the true
continuation strictly above every other candidate? Candidates are the true continuation, sentences
from elsewhere in the same document (INBOOK) and continuations an LM sampled from the prefix (GEN).

Each (prefix, candidate) pair is scored once; the accuracy on the mixed set and against each kind of
negative alone comes from the same scores. A tie with a wrong candidate is a miss.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from embedkit.generative.documents import Example

KINDS = {"all": ("in_document", "lm_generated"), "in_document": ("in_document",), "lm_generated": ("lm_generated",)}


@dataclass(frozen=True)
class CandidateSet:
    prefix: str
    candidates: tuple[str, ...]  # the true continuation first
    kinds: tuple[str, ...]  # "gold", "in_document" or "lm_generated", one per candidate


def candidate_sets(examples: Sequence[Example], lm_negatives: Mapping[str, Sequence[str]], in_document: int,
                   lm_generated: int) -> list[CandidateSet]:
    """The first ``in_document`` INBOOK and ``lm_generated`` GEN negatives of each example; examples
    that have fewer are left out (every prefix then has the same number of candidates)."""
    out = []
    for e in examples:
        inbook, gen = list(e.in_doc_negatives[:in_document]), list(lm_negatives.get(e.id, ())[:lm_generated])
        if len(inbook) == in_document and len(gen) == lm_generated:
            out.append(CandidateSet(e.prefix, (e.suffix, *inbook, *gen),
                                    ("gold",) + ("in_document",) * in_document + ("lm_generated",) * lm_generated))
    return out


def suffix_identification(scorer, sets: Sequence[CandidateSet], per_prefix: bool = False,
                          show_progress: bool = False) -> dict:
    """``accuracy_<kind>`` (x100) and ``candidates_<kind>`` for the mixed set (``all``) and each kind of
    negative alone (chance = 100 / candidates); with ``per_prefix``, ``hits_<kind>`` (0/1 per prefix)."""
    prefixes, lists = [s.prefix for s in sets], [list(s.candidates) for s in sets]
    scores = scorer.score_candidate_lists(prefixes, lists, show_progress=show_progress)
    result: dict = {"n_prefixes": len(sets)}
    for name, kinds in KINDS.items():
        hits = []
        for s, row in zip(sets, scores):
            others = np.array([v for v, k in zip(row, s.kinds) if k in kinds])
            if others.size:
                hits.append(int(row[0] > others.max()))
        if hits and len(hits) == len(sets):
            result[f"accuracy_{name}"] = 100 * float(np.mean(hits))
            result[f"candidates_{name}"] = 1 + sum(k in kinds for k in sets[0].kinds)
            if per_prefix:
                result[f"hits_{name}"] = hits
    return result
