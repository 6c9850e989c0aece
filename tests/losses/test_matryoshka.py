"""Matryoshka wrapper: the sum of the wrapped loss at each width, the same through GradCache, checked config."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from embedkit.errors import ConfigError
from embedkit.losses import CachedInfoNCELoss, InfoNCELoss, matryoshka_loss
from embedkit.losses.infonce import info_nce

ANCHORS = [f"anchor sentence {i} about topic {i % 4} with some words" for i in range(8)]
POSITIVES = [f"a positive text {i} on subject {i % 4}" for i in range(8)]


def _features(model):
    return [model.tokenize(column) for column in (ANCHORS, POSITIVES)]


def _grads(model, loss_fn):
    model.zero_grad()
    loss = loss_fn(_features(model), None)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_value_is_the_weighted_sum_over_truncated_renormalised_widths(tiny_model):
    tiny_model.eval()
    dims, weights = [32, 8, 4], [1.0, 0.5, 2.0]
    loss = matryoshka_loss(tiny_model, InfoNCELoss(tiny_model), dims, weights)
    with torch.no_grad():
        value = loss(_features(tiny_model), None).item()
        a, p = (tiny_model(f)["sentence_embedding"] for f in _features(tiny_model))
        expected = sum(w * info_nce(F.normalize(a[:, :d], dim=-1), F.normalize(p[:, :d], dim=-1)).item()
                       for d, w in zip(dims, weights))
        full_only = info_nce(a, p).item()
    assert value == pytest.approx(expected, rel=1e-5)
    assert value != pytest.approx(full_only, rel=1e-3)


def test_cached_variant_gives_the_same_loss_and_gradients(tiny_model):
    tiny_model.eval()  # no dropout: both see identical embeddings
    dims, weights = [32, 16, 8], [1.0, 1.0, 0.5]
    value, grads = _grads(tiny_model, matryoshka_loss(tiny_model, InfoNCELoss(tiny_model, symmetric=True), dims,
                                                      weights))
    cached = matryoshka_loss(tiny_model, CachedInfoNCELoss(tiny_model, 3, symmetric=True), dims, weights)
    cached_value, cached_grads = _grads(tiny_model, cached)
    assert cached_value == pytest.approx(value, abs=1e-5)
    assert grads.keys() == cached_grads.keys() and grads
    for name in grads:
        assert torch.allclose(cached_grads[name], grads[name], atol=1e-5), name
    # and the widths matter: the gradients differ from the plain loss's
    _, plain = _grads(tiny_model, InfoNCELoss(tiny_model, symmetric=True))
    assert any(not torch.allclose(plain[n], grads[n], atol=1e-5) for n in grads)


def test_gathered_variant_in_one_process_equals_the_plain_one(tiny_model):
    tiny_model.eval()
    plain, _ = _grads(tiny_model, matryoshka_loss(tiny_model, InfoNCELoss(tiny_model), [32, 8]))
    gathered, _ = _grads(tiny_model, matryoshka_loss(tiny_model, InfoNCELoss(tiny_model, gather_across_devices=True),
                                                     [32, 8]))
    assert gathered == pytest.approx(plain, abs=1e-6)


@pytest.mark.parametrize("dims, weights, message", [
    ([64, 16], None, r"1\.\.32"), ([16, 16], None, "repeat"), ([], None, "at least one"),
    ([32, 16], [1.0], "2 dims"), ([32, 16], [1.0, 0.0], "positive")])
def test_bad_configuration_is_one_clear_error(tiny_model, dims, weights, message):
    with pytest.raises(ConfigError, match=message):
        matryoshka_loss(tiny_model, InfoNCELoss(tiny_model), dims, weights)


def test_recipe_spec_builds_and_follows_its_base(tiny_model):
    from pydantic import TypeAdapter, ValidationError
    from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss

    from embedkit.training.loss_specs import LossSpec

    spec = TypeAdapter(LossSpec).validate_python(
        {"name": "matryoshka", "dims": [32, 8], "weights": [1, 2], "base": {"name": "cosent"}})
    assert spec.in_batch_negatives is False  # CoSENT's, not the default
    with pytest.raises(ValueError, match="trains on data.kind sts"):
        spec.check_data_kind("pairs", False)
    loss = spec.build(tiny_model)
    assert isinstance(loss, MatryoshkaLoss) and loss.matryoshka_dims == (32, 8)
    with pytest.raises(ValidationError):
        TypeAdapter(LossSpec).validate_python({"name": "matryoshka", "dims": [32], "base": {"name": "whitenedcse"}})


def test_a_recipe_trains_a_matryoshka_model_through_the_trainer(tiny_model_dir, tmp_path):
    """The tiny model trained 4 steps with the wrapper: the loss runs inside SentenceTransformerTrainer and the
    saved model changed at every prefix width (not only at the full width)."""
    import yaml

    from embedkit.encoding import encode
    from embedkit.models import load_model
    from embedkit.training import load_recipe, run_recipe

    sentences = tmp_path / "sentences.txt"
    sentences.write_text("\n".join(f"{s} {t} {p}." for s in ("A man", "The girl", "My dog", "Our cat")
                                   for t in ("reads a book", "finds a boat", "eats bread", "sees a bird")
                                   for p in ("at home", "in the park")) + "\n", encoding="utf-8")
    raw = {"model": str(tiny_model_dir), "data": {"kind": "sentences", "path": str(sentences)},
           "loss": {"name": "matryoshka", "dims": [32, 8], "weights": [1.0, 2.0],
                    "base": {"name": "cached-infonce", "mini_batch_size": 4}},
           "batch_size": 8, "learning_rate": 1e-3, "max_steps": 4, "max_seq_length": 16, "save_steps": 2,
           "seed": 7, "eval": {"sets": [], "before": False}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    recipe = load_recipe(path)
    result = run_recipe(recipe, tmp_path / "out")
    assert result.steps == 4
    before = encode(load_model(raw["model"], device="cpu", dim=8), ["a red book at home"])
    after = encode(load_model(str(tmp_path / "out"), device="cpu", dim=8), ["a red book at home"])
    assert after.shape == (1, 8) and not torch.allclose(torch.from_numpy(before), torch.from_numpy(after))
    assert "name: matryoshka" in (tmp_path / "out" / "recipe.yaml").read_text(encoding="utf-8")
