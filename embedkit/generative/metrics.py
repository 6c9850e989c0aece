"""Text-generation metrics used to compare decoding methods (suffix identification: ``suffix_id.py``).

- ``rep_n``: the fraction of a generation's word n-grams that repeat an earlier n-gram of the same
  generation, ``1 - |unique n-grams| / |n-grams|``, averaged over generations (Welleck et al., 2020;
  the repetition measure RankGen reports).
- ``distinct_n``: unique n-grams over all n-grams across the whole set of generations (Li et al., 2016).

Words are lower-cased ``\\w+`` runs and single punctuation marks.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

_WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def rep_n(texts: Sequence[str], n: int) -> float:
    """Mean within-generation repetition; generations shorter than ``n`` words count as 0."""
    values = []
    for text in texts:
        grams = ngrams(words(text), n)
        values.append(1.0 - len(set(grams)) / len(grams) if grams else 0.0)
    return float(np.mean(values)) if values else 0.0


def distinct_n(texts: Sequence[str], n: int) -> float:
    grams = [g for text in texts for g in ngrams(words(text), n)]
    return len(set(grams)) / len(grams) if grams else 0.0
