"""The paired permutation tests behind the report's significance marks."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from embedkit.evaluation.significance import compare_per_item, retrieval_test, sts_test


def test_retrieval_clear_difference_is_significant_and_noise_is_not():
    rng = np.random.default_rng(1)
    a = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0, 1, 100))}
    better = retrieval_test(a, {q: v + 0.1 for q, v in a.items()}, n_resamples=2000)
    assert better.delta == pytest.approx(0.1) and better.p_value < 0.01 and better.significant and better.n == 100
    noisy = retrieval_test(a, {q: v + rng.normal(0, 0.2) for q, v in a.items()}, n_resamples=2000)
    assert not noisy.significant
    same = retrieval_test(a, dict(a))
    assert same.delta == 0 and same.p_value == 1.0


def test_retrieval_needs_the_same_queries():
    assert retrieval_test({"q1": 1.0, "q2": 0.5}, {"q1": 1.0}) is None


def test_sts_delta_is_the_difference_of_spearman_correlations():
    rng = np.random.default_rng(2)
    gold = rng.uniform(0, 5, 300)
    a, b = gold + rng.normal(0, 3, 300), gold + rng.normal(0, 0.5, 300)
    test = sts_test(gold, a, b, n_resamples=2000)
    assert test.delta == pytest.approx(spearmanr(gold, b)[0] - spearmanr(gold, a)[0])
    assert test.significant and test.n == 300
    assert not sts_test(gold, a, a + rng.normal(0, 0.01, 300), n_resamples=2000).significant


def test_compare_per_item_pairs_only_like_with_like():
    retrieval = {"kind": "retrieval", "metric": "ndcg_at_10", "groups": {"test/default": {"scores": {"q": 1.0}}}}
    sts = {"kind": "sts", "metric": "cosine_spearman",
           "groups": {"test/default": {"gold": [1, 2, 3, 4], "predicted": [1, 2, 3, 4]}}}
    assert compare_per_item(retrieval, sts) is None
    assert compare_per_item(sts, {**sts, "groups": {"dev/default": sts["groups"]["test/default"]}}) is None
    other_gold = {"kind": "sts", "metric": "cosine_spearman",
                  "groups": {"test/default": {"gold": [4, 3, 2, 1], "predicted": [1, 2, 3, 4]}}}
    assert compare_per_item(sts, other_gold) is None
    assert compare_per_item(sts, sts).p_value == 1.0
