"""The method registry: a runner with its own params plugs into recipes and ``embedkit train``."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from embedkit.errors import ConfigError
from embedkit.training import load_recipe, run_recipe
from embedkit.training.result import TrainResult
from embedkit.training.runners import _RUNNERS, register_runner, runner_names


class EchoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rounds: int = 1


@pytest.fixture()
def echo_runner():
    calls = []

    def run(recipe, params, out_dir: Path, resume: bool) -> TrainResult:
        calls.append((recipe.name, params, out_dir, resume))
        return TrainResult(out_dir=str(out_dir), recipe_yaml=recipe.to_yaml(), base_model=recipe.model, steps=params.rounds,
                           train_seconds=0.0)

    register_runner("echo", EchoParams, run)
    yield calls
    _RUNNERS.pop("echo")


def test_registered_runner_receives_validated_params(echo_runner, recipe_file, tmp_path):
    recipe = load_recipe(recipe_file(method="echo", params={"rounds": 3}, loss=None))
    result = run_recipe(recipe, tmp_path / "out", resume=True)
    assert result.steps == 3 and "echo" in runner_names()
    assert echo_runner == [("tiny", EchoParams(rounds=3), tmp_path / "out", True)]


def test_runner_params_are_checked(echo_runner, recipe_file):
    with pytest.raises(ConfigError, match=r"unknown key 'params.round'; allowed keys in params: rounds"):
        load_recipe(recipe_file(method="echo", params={"round": 3}, loss=None))
    with pytest.raises(ConfigError, match=r"params.rounds: Input should be a valid integer"):
        load_recipe(recipe_file(method="echo", params={"rounds": "many"}, loss=None))


def test_contrastive_takes_no_params_and_needs_a_loss(recipe_file):
    with pytest.raises(ConfigError, match="takes no params"):
        load_recipe(recipe_file(params={"x": 1}))
    with pytest.raises(ConfigError, match="method contrastive needs a loss"):
        load_recipe(recipe_file(loss=None))


def test_data_in_params_needs_a_reader():
    with pytest.raises(ValueError, match="data_in_params needs read_data"):
        register_runner("reader-less", None, lambda *a: None, data_in_params=True)
    assert "reader-less" not in _RUNNERS
