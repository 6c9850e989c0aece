"""DebCSE: surface features, the propensity model, the inverse-propensity weights and the weighted loss."""
from __future__ import annotations

import math

import pytest
import torch

from embedkit.losses import DebCSELoss, info_nce
from embedkit.losses.debcse import PairWeights, debcse_loss, debcse_pair_weights, fit_propensity, surface_features


def _tokens(rows):
    """Hand-made tokenised column: 0 is padding, 101/102 are special tokens."""
    width = max(len(r) for r in rows) + 2
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r) + 2] = torch.tensor([101, *r, 102])
        mask[i, : len(r) + 2] = 1
    return {"input_ids": ids, "attention_mask": mask}


def test_surface_features_by_hand():
    anchors = _tokens([[1, 2, 3, 4], [5, 6]])
    positives = _tokens([[1, 2, 3, 4], [5, 7, 8, 9]])
    negatives = _tokens([[9, 9], [1, 2]])
    features = surface_features(anchors, [positives, negatives], special_ids=[101, 102])
    assert features.shape == (2, 4, 2)
    # anchor 0 {1,2,3,4} len 4 vs: p0 identical; p1 {5,7,8,9} len 4; n0 {9} len 2; n1 {1,2} len 2
    assert features[0, :, 0].tolist() == pytest.approx([1.0, 0.0, 0.0, 0.5])
    assert features[0, :, 1].tolist() == pytest.approx([0.0, 0.0, 0.5, 0.5])
    # anchor 1 {5,6} len 2 vs p1 {5,7,8,9} len 4: 1 shared of 5 -> 0.2; length |2-4|/4 = 0.5
    assert features[1, 1].tolist() == pytest.approx([0.2, 0.5])


def test_surface_features_from_a_real_tokenizer(tiny_model):
    tokenize = tiny_model.tokenize
    features = surface_features(tokenize(["the cat sat on the mat"]),
                                [tokenize(["the cat sat on the mat"]), tokenize(["dogs bark loudly"])],
                                tiny_model.tokenizer.all_special_ids)
    assert features[0, 0].tolist() == pytest.approx([1.0, 0.0])  # [CLS]/[SEP]/padding ignored
    assert features[0, 1, 0].item() == 0.0 and features[0, 1, 1].item() == pytest.approx(0.5)


def _constructed_batch():
    """6 anchors; 3 easy positives (copies) and 3 hard ones (paraphrases: little overlap, other length).
    Negatives mostly share nothing with the anchor, but a few share many words (surface-hard)."""
    rows = 6
    generator = torch.Generator().manual_seed(0)
    jaccard = torch.rand(rows, rows, generator=generator) * 0.15
    length = 0.3 + torch.rand(rows, rows, generator=generator) * 0.5
    for i in range(rows):
        easy = i < 3
        jaccard[i, i] = 1.0 if easy else 0.25
        length[i, i] = 0.0 if easy else 0.4
    jaccard[0, 4], length[0, 4] = 0.8, 0.0  # surface-hard negatives: high overlap, same length
    jaccard[5, 1], length[5, 1] = 0.7, 0.05
    return torch.stack([jaccard, length], dim=-1)


def test_propensity_rises_with_surface_similarity():
    features = _constructed_batch()
    is_positive = torch.eye(6, dtype=torch.bool)
    model = fit_propensity(features, is_positive)
    e = model(features)
    assert e[0, 0] > e[3, 3]  # a copy looks more like a positive than a paraphrase does
    assert e[0, 4] > e[0, 5]  # an overlapping negative looks more like a positive than a disjoint one
    assert model.coefficients[1] > 0  # Jaccard raises the propensity
    with pytest.raises(ValueError, match="both positive and negative"):
        fit_propensity(features, torch.zeros(6, 6, dtype=torch.bool))


def test_in_batch_negatives_that_look_like_positives_count_more():
    weights = debcse_pair_weights(_constructed_batch(), semantic_similarity=None, max_weight=50.0)
    negative = weights.logit_bias.exp()
    assert negative[0, 4] > negative[0, [1, 2, 3, 5]].max()  # the overlapping negative counts more
    assert negative[5, 1] > negative[5, [0, 2, 3, 4]].max()
    assert negative[0, 4] > 1.5 * negative[0, [1, 2, 3, 5]].mean()
    off_diagonal = ~torch.eye(6, dtype=torch.bool)
    assert negative[off_diagonal].view(6, 5).mean(1).tolist() == pytest.approx([1.0] * 6)  # mean 1 per anchor
    assert torch.all(weights.logit_bias.diagonal() == 0)  # the row's own positive: weight 1


def test_weighting_balances_surface_features_between_positives_and_negatives():
    """The IPW aim: under the weights, Jaccard overlap no longer tells positives from negatives."""
    features = _constructed_batch()
    is_positive = torch.eye(6, dtype=torch.bool)
    e = fit_propensity(features, is_positive)(features)
    jaccard = features[..., 0]
    pos_w, neg_w = 1 / e[is_positive], 1 / (1 - e[~is_positive])
    unweighted_gap = jaccard[is_positive].mean() - jaccard[~is_positive].mean()
    weighted_gap = (pos_w * jaccard[is_positive]).sum() / pos_w.sum() - \
        (neg_w * jaccard[~is_positive]).sum() / neg_w.sum()
    assert unweighted_gap > 0.5
    assert abs(weighted_gap) < unweighted_gap / 10


def test_false_negatives_are_dropped_and_sampled_hard_negatives_kept():
    features = _constructed_batch()[:, :6]
    features = torch.cat([features, features], dim=1)  # a hard-negative column: candidates 6..11
    similarity = torch.full((6, 12), 0.1)
    similarity[torch.arange(6), torch.arange(6)] = 0.8  # positives
    similarity[0, 2] = 0.95  # an in-batch candidate closer than the positive: a false negative
    similarity[0, 6] = 0.95  # anchor 0's own sampled hard negative, equally close: kept, weight 1
    weights = debcse_pair_weights(features, similarity, hard_negative_columns=1)
    assert weights.logit_bias[0, 2] == -math.inf
    assert weights.logit_bias[0, 6] == 0.0 and torch.all(weights.logit_bias[torch.arange(6), 6 + torch.arange(6)] == 0)
    assert torch.isfinite(weights.logit_bias[1, 2])  # only anchor 0 considers candidate 2 a false negative
    kept = torch.isfinite(weights.logit_bias[0]) & (torch.arange(12) != 0) & (torch.arange(12) != 6)
    assert weights.logit_bias[0, kept].exp().mean().item() == pytest.approx(1.0)  # renormalised without it
    no_filter = debcse_pair_weights(features, similarity, hard_negative_columns=1, false_negative_margin=None)
    assert torch.isfinite(no_filter.logit_bias).all()


def test_weighted_loss_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    r, e = 1 / math.sqrt(2), math.exp
    weights = PairWeights(logit_bias=torch.tensor([[0.0, math.log(2.0)], [math.log(0.5), 0.0]]),
                          propensity=torch.zeros(2, 2))
    # cos(a0, p)=[1, r], cos(a1, p)=[0, r]; anchor 0's negative p1 has weight 2, anchor 1's negative p0 0.5
    loss0 = -1 + math.log(e(1) + 2.0 * e(r))
    loss1 = -r + math.log(e(r) + 0.5 * e(0))
    assert debcse_loss(a, p, [], weights, temperature=1.0).item() == pytest.approx((loss0 + loss1) / 2, abs=1e-6)
    uniform = PairWeights(torch.zeros(2, 2), torch.zeros(2, 2))
    assert debcse_loss(a, p, [], uniform, 1.0).item() == pytest.approx(info_nce(a, p, temperature=1.0).item())


def test_debcse_loss_on_the_model_equals_its_parts(tiny_model, tiny_model_dir):
    from embedkit.models import load_model

    tiny_model.eval()  # no dropout: the module's forward and the hand computation see the same embeddings
    anchors = ["a cat sat on the mat", "dogs run in the park today", "the sun is hot", "rain falls at night"]
    positives = ["a cat is sitting", "in the park dogs are running", "it is hot", "at night it rains a lot"]
    negatives = ["a cat stood on the mat", "dogs sleep in the park today", "the sun is cold", "snow falls"]
    features = [tiny_model.tokenize(c) for c in (anchors, positives, negatives)]
    module = DebCSELoss(tiny_model, false_negative_margin=None)
    value = module(features, None)
    embeddings = [tiny_model(dict(f))["sentence_embedding"] for f in features]
    surface = surface_features(features[0], features[1:], tiny_model.tokenizer.all_special_ids)
    expected = debcse_loss(*embeddings[:2], embeddings[2:],
                           debcse_pair_weights(surface, None, hard_negative_columns=1, max_weight=10.0), 0.05)
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    plain = info_nce(embeddings[0], embeddings[1], [embeddings[2]], temperature=0.05)
    assert abs(value.item() - plain.item()) > 1e-4  # the in-batch weights are not uniform here
    value.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tiny_model.parameters())

    guide = load_model(str(tiny_model_dir), device="cpu")
    guided = DebCSELoss(tiny_model, guide=guide)
    assert torch.isfinite(guided(features, None))
    assert not any(p.requires_grad for p in guide.parameters())
    assert guided.get_config_dict()["guide"] == "SentenceTransformer" and "DebCSE" in guided.citation
    with pytest.raises(ValueError, match="columns"):
        DebCSELoss(tiny_model)([tiny_model.tokenize(anchors)], None)
