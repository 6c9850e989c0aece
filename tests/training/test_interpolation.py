"""WiSE-FT weight interpolation: exact endpoints and midpoint, the recipe option, and alpha selection on dev."""
from __future__ import annotations

import pytest
import torch

from embedkit.errors import ConfigError
from embedkit.training import load_recipe, run_recipe
from embedkit.training.interpolation import evaluate_alphas, interpolate_weights


def _shifted(model_dir, delta: float):
    from embedkit.models import load_model

    model = load_model(str(model_dir), device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(delta)
    return model


def test_interpolation_endpoints_and_midpoint(tiny_model_dir):
    from embedkit.models import load_model

    base = load_model(str(tiny_model_dir), device="cpu")
    key = next(k for k, v in base.state_dict().items() if v.is_floating_point())
    for alpha, expected_shift in ((0.0, 0.0), (1.0, 0.5), (0.5, 0.25)):
        tuned = _shifted(tiny_model_dir, 0.5)
        interpolate_weights(base, tuned, alpha)
        assert torch.allclose(tuned.state_dict()[key], base.state_dict()[key] + expected_shift, atol=1e-6)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        interpolate_weights(base, tuned, 1.5)


def test_recipe_alpha_zero_saves_the_base_weights(recipe_file, tiny_model_dir, tmp_path):
    from embedkit.models import load_model

    result = run_recipe(load_recipe(recipe_file(max_steps=2, wise_ft_alpha=0.0)), tmp_path / "out")
    assert result.steps == 2
    base, saved = load_model(str(tiny_model_dir), device="cpu"), load_model(str(tmp_path / "out"), device="cpu")
    for key, value in base.state_dict().items():
        assert torch.equal(saved.state_dict()[key], value), key
    trained = run_recipe(load_recipe(recipe_file(max_steps=2)), tmp_path / "plain")
    changed = load_model(str(tmp_path / "plain"), device="cpu").state_dict()
    assert trained.steps == 2 and any(not torch.equal(changed[k], v) for k, v in base.state_dict().items())


def test_alpha_is_refused_for_other_methods(recipe_file):
    with pytest.raises(ConfigError, match="wise_ft_alpha is supported by method contrastive only"):
        load_recipe(recipe_file(method="ccp", wise_ft_alpha=0.5, loss=None, params={}))


def test_evaluate_alphas_scores_dev_sets_of_a_run(recipe_file, tmp_path):
    sets = [{"kind": "sts", "path": "stsb", "split": "dev"}]
    run_recipe(load_recipe(recipe_file(max_steps=2, eval={"sets": sets, "before": True})), tmp_path / "out")
    import json

    after = json.loads((tmp_path / "out" / "results.json").read_text())
    scores = evaluate_alphas(tmp_path / "out", [0.0, 1.0])
    assert scores["1"]["stsb-dev"]["spearman"] == pytest.approx(after["after"]["stsb-dev"]["spearman"], abs=1e-6)
    assert scores["0"]["stsb-dev"]["spearman"] == pytest.approx(after["before"]["stsb-dev"]["spearman"], abs=1e-6)
