"""``embedkit train``: what the evaluations will cost is said before training, and ``--no-eval`` skips them."""
from __future__ import annotations

import json

import pytest
import yaml

from embedkit.cli.main import main
from embedkit.cli.train import evaluation_cost, without_evaluation
from embedkit.training import load_recipe

STS_DEV = {"kind": "sts", "path": "stsb", "split": "dev"}  # 8 pairs: 16 texts (conftest's data_dir)


@pytest.mark.parametrize("evaluation, text", [
    ({"sets": [{**STS_DEV, "during": False}]}, "evaluation before and after training: stsb-dev 16 texts; up to 32 texts"),
    ({"sets": [STS_DEV], "steps": 2}, "evaluation before and after training, and every 2 steps: stsb-dev 16 texts; "
                                      "up to 80 texts"),  # 2 + 6 // 2 runs
    ({"sets": [STS_DEV, {"kind": "beir", "path": "beir", "split": "train", "during": False}], "before": False},
     "evaluation after training: stsb-dev 16 texts, beir-train 9 texts; up to 25 texts"),
    ({"sets": []}, "evaluation: none"),
])
def test_the_evaluation_cost_is_counted_in_texts(recipe_file, evaluation, text):
    assert evaluation_cost(load_recipe(recipe_file(eval=evaluation))).startswith(text)


def test_no_eval_trains_and_saves_without_evaluating(recipe_file, tmp_path, monkeypatch, capsys):
    import embedkit.training.trainer as trainer

    real = trainer.evaluate_sets
    monkeypatch.setattr(trainer, "evaluate_sets", lambda model, sets, *a, **k: pytest.fail("--no-eval evaluated")
                        if sets else real(model, sets, *a, **k))
    path = recipe_file(max_steps=2, eval={"sets": [STS_DEV], "steps": 1, "before": True})
    assert main(["train", str(path), "--out", str(tmp_path / "out"), "--no-eval"]) == 0
    assert capsys.readouterr().out.startswith("evaluation: none\n")
    results = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert results["steps"] == 2 and not results["before"] and not results["after"]


def test_no_eval_drops_moe_domain_evaluations(tiny_recipe, tmp_path):
    domains = [{"name": "news", "kind": "sts", "path": "stsb", "eval": {"kind": "sts", "path": "stsb", "split": "dev"},
                "test": {"kind": "sts", "path": "stsb", "split": "train"}}]  # the fixture's data has no test split
    raw = tiny_recipe(method="moe", params={"domains": domains})
    del raw["data"]
    path = tmp_path / "moe.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    recipe = load_recipe(path)
    assert evaluation_cost(recipe).startswith("evaluation after training: news:stsb-dev 16 texts")
    assert "news:stsb-train" not in evaluation_cost(recipe)  # a domain's test set: the final run only
    final = load_recipe(path, ["eval.final=true"])
    assert "news:stsb-train" in evaluation_cost(final)
    assert evaluation_cost(without_evaluation(recipe)) == "evaluation: none"
    assert evaluation_cost(without_evaluation(final)) == "evaluation: none"
