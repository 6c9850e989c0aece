"""Shuffled group whitening and the WhitenedCSE loss."""
from __future__ import annotations

import math

import pytest
import torch

from embedkit.losses import GroupWhitening, WhitenedCSELoss
from embedkit.losses.whitening import automatic_num_groups, whitened_cse_loss


def _correlated(rows=64, dim=12, seed=0):
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(dim, dim, generator=generator)
    return torch.randn(rows, dim, generator=generator) @ mixing + 3.0


@pytest.mark.parametrize("method", ["zca", "cholesky"])
def test_each_group_has_identity_covariance_in_training(method):
    x = _correlated()
    whitening = GroupWhitening(num_groups=3, method=method, eps=0.0).train()
    out = whitening(x)
    groups = whitening.last_permutation.reshape(3, 4)  # channels of each group, in input order
    for channels in groups:
        part = out[:, channels]
        centred = part - part.mean(0)
        covariance = centred.T @ centred / x.size(0)
        assert torch.allclose(covariance, torch.eye(4), atol=1e-4)
    # the input channels of one group were strongly correlated; across groups nothing is promised
    assert not torch.allclose(torch.cov(x[:, groups[0]].T), torch.eye(4), atol=0.1)


def test_zca_is_the_symmetric_whitening():
    x = _correlated(dim=4)
    out = GroupWhitening(num_groups=1, shuffle=False, eps=0.0).train()(x)
    centred = x - x.mean(0)
    covariance = centred.T @ centred / x.size(0)
    values, vectors = torch.linalg.eigh(covariance.double())
    zca = (vectors @ torch.diag(values.rsqrt()) @ vectors.T).float()
    assert torch.allclose(out, centred @ zca, atol=1e-4)


def test_permutation_changes_every_step_and_output_order_is_restored():
    torch.manual_seed(0)
    whitening = GroupWhitening(num_groups=4).train()
    x = _correlated()
    whitening(x)
    first = whitening.last_permutation.clone()
    whitening(x)
    assert not torch.equal(first, whitening.last_permutation)
    # without shuffling, output channel k is input channel k whitened within its fixed group
    plain = GroupWhitening(num_groups=12, shuffle=False, eps=0.0).train()(x)  # groups of 1 = standardising
    assert torch.allclose(plain, (x - x.mean(0)) / x.std(0, unbiased=False), atol=1e-4)


def test_eval_mode_is_identity():
    x = _correlated()
    assert torch.equal(GroupWhitening(num_groups=3).eval()(x), x)


def test_gradient_flows_through_the_whitened_output():
    x = _correlated().requires_grad_()
    GroupWhitening(num_groups=3).train()(x).pow(3).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_group_count_rules():
    with pytest.raises(ValueError, match="does not divide"):
        GroupWhitening(num_groups=5).train()(_correlated())
    with pytest.raises(ValueError, match="method"):
        GroupWhitening(method="pca")
    assert automatic_num_groups(768, 64) == 24  # 32 channels per group <= 64 / 2
    assert automatic_num_groups(12, 64) == 1
    assert automatic_num_groups(12, 4) == 6
    assert automatic_num_groups(7, 2) == 7


def test_whitened_cse_loss_by_hand():
    """Three views of two sentences: view 1 is the anchor, views 2 and 3 are positives (losses summed)."""
    v1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    v2 = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    v3 = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    r, t = 1 / math.sqrt(2), 0.5
    e = math.exp
    # view 2: cos(a0, .)=[1, r], cos(a1, .)=[0, r]; view 3: cos(a0, .)=[0, 0], cos(a1, .)=[1, 1]
    loss_v2 = ((-1 / t + math.log(e(1 / t) + e(r / t))) + (-r / t + math.log(e(0) + e(r / t)))) / 2
    loss_v3 = ((0 + math.log(2)) + (-1 / t + math.log(2 * e(1 / t)))) / 2
    assert whitened_cse_loss([v1, v2, v3], temperature=t).item() == pytest.approx(loss_v2 + loss_v3, abs=1e-5)
    with pytest.raises(ValueError, match="2 views"):
        whitened_cse_loss([v1])


def test_whitened_cse_loss_on_the_model(tiny_model):
    tiny_model.train()
    sentences = [f"sentence {i} about a topic {i % 3}" for i in range(16)]
    loss_fn = WhitenedCSELoss(tiny_model, num_groups=8, num_views=3)
    loss = loss_fn([tiny_model.tokenize(sentences)], None)
    assert torch.isfinite(loss)
    loss.backward()
    assert loss_fn.projection[0].weight.grad is not None  # the training-only head is trained
    assert all(torch.isfinite(p.grad).all() for p in tiny_model.parameters() if p.grad is not None)
    tiny_model.eval()
    loss_fn([tiny_model.tokenize(sentences)], None)
    assert not loss_fn.whitening.training  # follows the model into eval mode: whitening off
    with pytest.raises(ValueError, match="one text column"):
        loss_fn([tiny_model.tokenize(sentences)] * 2, None)
    with pytest.raises(ValueError, match="num_views"):
        WhitenedCSELoss(tiny_model, num_views=1)
    assert loss_fn.get_config_dict()["num_groups"] == 8 and "WhitenedCSE" in loss_fn.citation
