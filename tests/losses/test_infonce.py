"""InfoNCE against hand-computed values, and its SimCSE recipes on the tiny model."""
from __future__ import annotations

import math

import pytest
import torch

from embedkit.losses import InfoNCELoss, info_nce
from embedkit.losses.infonce import info_nce_per_anchor

# anchors a0=(1,0), a1=(0,1); positives p0=(1,0), p1=(1,1); negatives n0=(0,1), n1=(-1,0)
# cosines: a0.p0=1, a0.p1=r, a1.p0=0, a1.p1=r; a0.n0=0, a0.n1=-1, a1.n0=1, a1.n1=0  (r = 1/sqrt 2)
A = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
P = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
N = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
R = 1 / math.sqrt(2)
e = math.exp


def test_in_batch_negatives_by_hand():
    loss0 = -1 + math.log(e(1) + e(R))
    loss1 = -R + math.log(e(0) + e(R))
    assert info_nce(A, P, temperature=1.0).item() == pytest.approx((loss0 + loss1) / 2, abs=1e-6)


def test_temperature_divides_the_logits():
    loss0 = -2 + math.log(e(2) + e(2 * R))
    loss1 = -2 * R + math.log(e(0) + e(2 * R))
    assert info_nce(A, P, temperature=0.5).item() == pytest.approx((loss0 + loss1) / 2, abs=1e-6)


@pytest.mark.parametrize("weight", [1.0, 3.0, 0.0])
def test_hard_negative_weight_multiplies_only_the_own_negative(weight):
    # anchor 0: own negative n0 (cos 0) weighted, n1 (cos -1) unweighted; anchor 1: own n1 (cos 0), n0 (cos 1)
    loss0 = -1 + math.log(e(1) + e(R) + weight * e(0) + e(-1))
    loss1 = -R + math.log(e(0) + e(R) + e(1) + weight * e(0))
    value = info_nce(A, P, N, temperature=1.0, hard_negative_weight=weight).item()
    assert value == pytest.approx((loss0 + loss1) / 2, abs=1e-6)


def test_symmetric_term_is_averaged_in():
    forward = [-1 + math.log(e(1) + e(R)), -R + math.log(e(0) + e(R))]
    # positive -> anchors: p0 scores a0=1, a1=0; p1 scores a0=r, a1=r
    backward = [-1 + math.log(e(1) + e(0)), -R + math.log(e(R) + e(R))]
    expected = sum((f + b) / 2 for f, b in zip(forward, backward)) / 2
    assert info_nce(A, P, temperature=1.0, symmetric=True).item() == pytest.approx(expected, abs=1e-6)


def test_three_by_three_with_negatives_and_rows():
    torch.manual_seed(0)
    a, p, n = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    cos = lambda x, y: (x @ y) / (x.norm() * y.norm())  # noqa: E731
    expected = []
    for i in range(3):
        logits = [cos(a[i], p[j]) / 0.1 for j in range(3)] + [cos(a[i], n[j]) / 0.1 for j in range(3)]
        logits[3 + i] = logits[3 + i] + math.log(2.0)
        expected.append(-logits[i] + torch.logsumexp(torch.stack(logits), 0))
    per_anchor = info_nce_per_anchor(a, p, n, temperature=0.1, hard_negative_weight=2.0)
    assert torch.allclose(per_anchor, torch.stack(expected), atol=1e-5)
    # rows= computes the same values for a subset of anchors, still against every candidate
    assert torch.allclose(info_nce_per_anchor(a, p, n, 0.1, 2.0, rows=slice(1, 3)), per_anchor[1:], atol=1e-6)


def test_bad_arguments_are_refused(tiny_model):
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(tiny_model, temperature=0)
    with pytest.raises(ValueError, match="hard_negative_weight"):
        InfoNCELoss(tiny_model, hard_negative_weight=-1)
    with pytest.raises(ValueError, match="rows"):
        info_nce(A, P[:1])


def test_matches_sentence_transformers_mnrl(tiny_model):
    """With weight 1 and no symmetric term this is ST's MultipleNegativesRankingLoss (scale = 1 / T)."""
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    tiny_model.eval()
    columns = [["a cat sat", "dogs run fast", "the sun is hot"], ["a cat is sitting", "fast dogs", "hot sun"],
               ["a dog stood", "slow cats", "the moon is cold"]]
    features = lambda: [tiny_model.tokenize(c) for c in columns]  # noqa: E731
    ours = InfoNCELoss(tiny_model, temperature=0.05)(features(), None)
    theirs = MultipleNegativesRankingLoss(tiny_model, scale=20.0)(features(), None)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-5)


def test_simcse_unsupervised_and_supervised_recipes(tiny_model):
    sentences = ["a cat sat on the mat", "dogs run in the park", "the sun is hot today", "rain falls at night"]
    columns = lambda: [tiny_model.tokenize(sentences), tiny_model.tokenize(sentences)]  # noqa: E731
    tiny_model.eval()  # no dropout: both views are the same embedding, the positive's cosine is exactly 1
    identical = InfoNCELoss(tiny_model, temperature=0.05)(columns(), None)
    with torch.no_grad():
        e = torch.nn.functional.normalize(tiny_model(tiny_model.tokenize(sentences))["sentence_embedding"], dim=-1)
    by_hand = (-1 / 0.05 + torch.logsumexp(e @ e.T / 0.05, dim=1)).mean()
    assert identical.item() == pytest.approx(by_hand.item(), rel=1e-5)
    tiny_model.train()
    torch.manual_seed(0)
    unsup = InfoNCELoss(tiny_model, temperature=0.05)(columns(), None)
    assert unsup.item() > identical.item()  # dropout makes the views differ: the positive's logit drops below 1/T
    unsup.backward()
    with torch.no_grad():  # the augmentation: two forward passes of the same text differ by dropout only
        view1, view2 = (tiny_model(tiny_model.tokenize(sentences))["sentence_embedding"] for _ in range(2))
    assert not torch.allclose(view1, view2)
    nli = [sentences, ["a cat is sitting", "dogs are running", "it is hot", "it rains"],
           ["a cat is standing", "dogs sleep", "it is cold", "it is dry"]]
    sup = InfoNCELoss(tiny_model)([tiny_model.tokenize(c) for c in nli], None)
    assert torch.isfinite(sup)
    sup.backward()
    grads = [p.grad for p in tiny_model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_config_and_citation(tiny_model):
    loss = InfoNCELoss(tiny_model, temperature=0.1, hard_negative_weight=2.0, symmetric=True)
    assert loss.get_config_dict() == {"temperature": 0.1, "hard_negative_weight": 2.0, "symmetric": True,
                                      "gather_across_devices": False}
    assert "SimCSE" in loss.citation
