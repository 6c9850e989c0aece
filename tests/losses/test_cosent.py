"""CoSENT against the formula written out by hand."""
from __future__ import annotations

import math

import pytest
import torch

from embedkit.losses import CoSENTLoss


def test_cosent_by_hand(tiny_model):
    # pair k = (x_k, y_k); cosines: pair 0 -> 1, pair 1 -> 0, pair 2 -> 1/sqrt 2
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    y = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    labels = torch.tensor([0.9, 0.1, 0.5])
    cos = [1.0, 0.0, 1 / math.sqrt(2)]
    scale = 5.0
    # sum over (i, j) with label_i > label_j of exp(scale * (cos_j - cos_i))
    ordered = [(0, 1), (0, 2), (2, 1)]
    expected = math.log(1 + sum(math.exp(scale * (cos[j] - cos[i])) for i, j in ordered))
    loss = CoSENTLoss(tiny_model, scale=scale).compute_loss_from_embeddings([x, y], labels)
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_cosent_on_the_model(tiny_model):
    loss_fn = CoSENTLoss(tiny_model)
    features = [tiny_model.tokenize(["a cat", "a dog", "the sun"]), tiny_model.tokenize(["a kitten", "a car", "hot"])]
    loss = loss_fn(features, torch.tensor([4.5, 0.5, 2.0]))
    assert torch.isfinite(loss)
    loss.backward()
    assert loss_fn.get_config_dict() == {"scale": 20.0, "similarity_fct": "pairwise_cos_sim"}
    assert "CoSENT" in loss_fn.citation
    with pytest.raises(ValueError, match="scale"):
        CoSENTLoss(tiny_model, scale=0)
