"""Paired significance tests between two models on the same queries (retrieval) or pairs (STS).

A paired randomization (permutation) test, the test Smucker, Allan & Carterette (CIKM 2007, "A
comparison of statistical significance tests for information retrieval evaluation") recommend for IR:
under the null hypothesis the two systems are exchangeable on each query, so each query's two scores
are swapped at random and the observed difference is compared with the differences of the swaps.
scipy's ``permutation_test(permutation_type="samples")`` does the resampling; this module only
chooses the statistic:

- retrieval: the mean over queries of the per-query main score (nDCG@10) of B minus A;
- STS: Spearman(gold, cosine of B) minus Spearman(gold, cosine of A) over the same pairs (the pair's
  two predictions are swapped, so the rank correlation is recomputed for every resample).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
N_RESAMPLES = 10_000
SEED = 0


@dataclass(frozen=True)
class PairedTest:
    delta: float  # B minus A, on the task's 0-1 scale
    p_value: float
    n: int
    unit: str  # what n counts: "queries" or "pairs"
    method: str

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA


def compare_per_item(a: dict, b: dict, *, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> PairedTest | None:
    """Test B against A from two per-item records (see :mod:`embedkit.evaluation.per_item`).

    None when they cannot be paired: different kinds or metrics, not exactly one split/subset each,
    or not the same queries / the same number of pairs.
    """
    if not a or not b or a.get("kind") != b.get("kind") or a.get("metric") != b.get("metric"):
        return None
    groups_a, groups_b = a.get("groups") or {}, b.get("groups") or {}
    if len(groups_a) != 1 or groups_a.keys() != groups_b.keys():
        return None  # mteb averages several subsets; a pooled test would test another statistic
    (group_a,), (group_b,) = groups_a.values(), groups_b.values()
    if a["kind"] == "retrieval":
        return retrieval_test(group_a["scores"], group_b["scores"], n_resamples=n_resamples, seed=seed)
    if a["kind"] == "sts":
        if group_a["gold"] != group_b["gold"]:
            return None
        return sts_test(group_a["gold"], group_a["predicted"], group_b["predicted"], n_resamples=n_resamples,
                        seed=seed)
    return None


def retrieval_test(scores_a: dict[str, float], scores_b: dict[str, float], *, n_resamples: int = N_RESAMPLES,
                   seed: int = SEED) -> PairedTest | None:
    """Paired permutation test of the mean per-query score; the two runs must score the same queries."""
    if not scores_a or scores_a.keys() != scores_b.keys():
        return None
    ids = sorted(scores_a)
    x = np.array([scores_a[i] for i in ids], dtype=np.float64)
    y = np.array([scores_b[i] for i in ids], dtype=np.float64)

    def mean_difference(x, y, axis=-1):
        return np.mean(y - x, axis=axis)

    return _permutation(x, y, mean_difference, n_resamples, seed, "queries",
                        "paired permutation test, mean per-query score")


def sts_test(gold, predicted_a, predicted_b, *, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> PairedTest | None:
    """Paired permutation test of the difference of the two Spearman correlations with the gold scores."""
    from scipy.stats import rankdata

    if len(predicted_a) != len(gold) or len(predicted_b) != len(gold) or len(gold) < 3:
        return None
    gold_ranks = _standardize(rankdata(np.asarray(gold, dtype=np.float64)))

    def spearman(values, axis=-1):
        return np.mean(_standardize(rankdata(values, axis=axis)) * gold_ranks, axis=axis)

    def spearman_difference(x, y, axis=-1):
        return spearman(y, axis) - spearman(x, axis)

    return _permutation(np.asarray(predicted_a, dtype=np.float64), np.asarray(predicted_b, dtype=np.float64),
                        spearman_difference, n_resamples, seed, "pairs", "paired permutation test, Spearman over pairs")


def _standardize(values: np.ndarray) -> np.ndarray:
    centred = values - values.mean(axis=-1, keepdims=True)
    scale = np.sqrt(np.mean(centred ** 2, axis=-1, keepdims=True))
    return centred / np.where(scale == 0, 1.0, scale)


def _permutation(x: np.ndarray, y: np.ndarray, statistic, n_resamples: int, seed: int, unit: str,
                 method: str) -> PairedTest:
    from scipy.stats import permutation_test

    observed = float(statistic(x, y))
    if np.array_equal(x, y):  # identical runs: every swap gives the observed difference
        return PairedTest(delta=observed, p_value=1.0, n=len(x), unit=unit, method=method)
    result = permutation_test((x, y), statistic, permutation_type="samples", vectorized=True,
                              n_resamples=n_resamples, alternative="two-sided", random_state=seed,
                              batch=max(1, min(n_resamples, 2_000_000 // max(len(x), 1))))
    return PairedTest(delta=observed, p_value=float(result.pvalue), n=len(x), unit=unit, method=method)
