"""Recipe validation: one-line errors naming the key and the allowed keys/values, --set overrides, paths."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from embedkit.errors import ConfigError, DataError
from embedkit.training.recipe import apply_override, load_recipe

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "training").glob("*.yaml"))


def one_line_error(recipe_path, overrides=()) -> str:
    with pytest.raises(ConfigError) as info:
        load_recipe(recipe_path, list(overrides))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_valid_recipe_loads_with_defaults(recipe_file):
    recipe = load_recipe(recipe_file())
    assert recipe.name == "tiny" and recipe.loss.name == "infonce" and recipe.loss.temperature == 0.05
    assert recipe.precision == "fp32" and recipe.method == "contrastive"


def test_unknown_top_level_key_lists_allowed_keys(recipe_file):
    message = one_line_error(recipe_file(epochz=3))
    assert "unknown key 'epochz'" in message and "epochs" in message and "max_steps" in message


def test_unknown_nested_key_names_dotted_key_and_loss_params(recipe_file):
    message = one_line_error(recipe_file(), ["loss.temprature=0.1"])
    assert "unknown key 'loss.temprature'" in message
    assert "temperature" in message and "hard_negative_weight" in message


def test_unknown_key_in_eval_set_list(recipe_file):
    message = one_line_error(recipe_file(eval={"sets": [{"kind": "sts", "path": "stsb", "spilt": "dev"}]}))
    assert "'eval.sets.0.spilt'" in message and "split" in message


@pytest.mark.parametrize("override, fragment", [
    ("precision=fp64", "precision: Input should be 'fp32', 'bf16' or 'fp16'"),
    ("batch_size=0", "batch_size: Input should be greater than or equal to 1"),
    ("loss.temperature=-1", "loss.temperature: Input should be greater than 0"),
    ("loss.name=triplet", "loss.name: unknown value 'triplet'; allowed values: 'infonce'"),
    ("data.kind=images", "data.kind: Input should be 'sentences', 'pairs'"),
    ("method=nonsense", "method: unknown method 'nonsense'; allowed values: "),
])
def test_bad_values_name_key_and_allowed_values(recipe_file, override, fragment):
    assert fragment in one_line_error(recipe_file(), [override])


def test_loss_and_data_kind_must_fit(recipe_file):
    message = one_line_error(recipe_file(), ["loss={name: cosent}"])
    assert "loss cosent trains on data.kind sts, not sentences" in message


@pytest.mark.parametrize("method", ["contrastive", "ccp", "rankgen", "grace"])
def test_data_is_required_unless_the_method_reads_its_own(tiny_recipe, tmp_path, method):
    raw = {key: value for key, value in tiny_recipe(method=method).items() if key != "data"}
    path = tmp_path / "nodata.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert one_line_error(path) == f"{path}: missing key 'data'"
    moe = {"domains": [{"name": "news", "kind": "sts", "path": "stsb"}]}
    path.write_text(yaml.safe_dump({**raw, "method": "moe", "params": moe}), encoding="utf-8")
    recipe = load_recipe(path)  # moe's data is params.domains
    assert recipe.data is None and "data" not in recipe.to_yaml()


def test_set_overrides_nested_fields_as_yaml_scalars(recipe_file):
    recipe = load_recipe(recipe_file(), ["loss.temperature=0.07", "max_steps=8", "loss.symmetric=true",
                                         "learning_rate=3e-5", "max_seq_length=null",
                                         "eval.sets=[{kind: sts, path: stsb, split: dev}]",
                                         "eval.sets.0.split=train"])
    assert recipe.loss.temperature == 0.07 and recipe.max_steps == 8 and recipe.loss.symmetric is True
    assert recipe.learning_rate == 3e-5 and recipe.max_seq_length is None
    assert recipe.eval.sets[0].split == "train" and recipe.eval.sets[0].name == "stsb-train"


def test_set_creates_missing_sections():
    raw = {"data": {"kind": "beir", "path": "x"}}
    apply_override(raw, "data.hard_negatives.range=20:40")
    assert raw["data"]["hard_negatives"] == {"range": "20:40"}


@pytest.mark.parametrize("item", ["no-equals-sign", "=3"])
def test_malformed_set_is_refused(recipe_file, item):
    assert "--set" in one_line_error(recipe_file(), [item])


def test_bad_range_is_refused(recipe_file):
    message = one_line_error(recipe_file(data={"kind": "beir", "path": "beir", "hard_negatives": {"range": "60:10"}}))
    assert "data.hard_negatives.range" in message and "START:END" in message


def test_relative_data_path_resolves_against_embedkit_data(recipe_file, data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the data folder, so only EMBEDKIT_DATA can resolve it
    recipe = load_recipe(recipe_file())
    assert recipe.data.resolved_path() == data_dir / "wiki" / "sentences.txt"
    missing = load_recipe(recipe_file(), ["data.path=wiki/absent.txt"])
    with pytest.raises(DataError, match="absent.txt"):
        missing.data.resolved_path()


def test_invalid_yaml_names_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: default\ndata: [unclosed\n", encoding="utf-8")
    message = one_line_error(path)
    assert "bad.yaml" in message and "line" in message


def test_repeated_eval_set_names_are_refused(recipe_file):
    sets = [{"kind": "sts", "path": "stsb", "split": "dev"}, {"kind": "sts", "path": "stsb", "split": "dev"}]
    assert "stsb-dev repeats" in one_line_error(recipe_file(eval={"sets": sets}))


def test_a_test_split_is_refused_where_runs_are_chosen(recipe_file):
    sets = [{"kind": "sts", "path": "stsb", "split": "dev"}, {"kind": "sts", "path": "stsb", "split": "test"}]
    message = one_line_error(recipe_file(eval={"sets": sets}))
    assert "eval: sets.1 (stsb-test): a test split is scored only in the final run" in message
    assert "eval.test_sets" in message and "eval.final=true" in message


def test_test_sets_are_scored_only_in_the_final_run(recipe_file):
    spec = {"steps": 2, "sets": [{"kind": "sts", "path": "stsb", "split": "dev"}],
            "test_sets": [{"kind": "sts", "path": "stsb", "split": "test", "during": True}]}
    chosen = load_recipe(recipe_file(eval=spec))
    assert [s.name for s in chosen.eval.active_sets()] == ["stsb-dev"]
    final = load_recipe(recipe_file(eval=spec), ["eval.final=true"])
    assert [(s.name, s.during) for s in final.eval.active_sets()] == [("stsb-dev", True), ("stsb-test", False)]
    clash = {"sets": [{"kind": "sts", "path": "stsb", "split": "dev", "name": "x"}],
             "test_sets": [{"kind": "sts", "path": "stsb", "split": "test", "name": "x"}]}
    assert "x repeats" in one_line_error(recipe_file(eval=clash))


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_shipped_recipe_validates(path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem and recipe.description


@pytest.mark.e2e
@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_shipped_recipe_data_loads(path, shared_data):
    from embedkit.training.datasets import load_training_data
    from embedkit.training.evaluation import load_eval_sets

    from embedkit.training.runners import get_runner, validate_params

    recipe = load_recipe(path)
    read_data = get_runner(recipe.method).read_data
    if read_data is not None:  # moe, ccp: the method reads its training rows itself
        assert read_data(recipe, validate_params(recipe))[0]
    else:
        assert next(iter(load_training_data(recipe.data).columns.values()))
    assert len(load_eval_sets(recipe.eval)) == len(recipe.eval.sets)
    final = recipe.eval.model_copy(update={"final": True})
    assert len(load_eval_sets(final)) == len(recipe.eval.sets) + len(recipe.eval.test_sets)


def test_shipped_recipes_cover_every_method():
    assert {p.stem for p in RECIPES} >= {"simcse-unsup", "simcse-sup", "debcse", "whitenedcse", "cosent-stsb",
                                         "retrieval-scifact"}


@pytest.mark.parametrize("items, start", [
    (["foo=1"], "--set foo=1: unknown key 'foo'"),
    (["max_steps=4", "loss.temperature=-1"], "--set loss.temperature=-1: loss.temperature: Input should be"),
    (["loss={name: infonce, temprature: 2}"], "--set loss={name: infonce, temprature: 2}: unknown key 'loss.temprature'"),
])
def test_a_bad_set_item_is_named_not_the_recipe_file(recipe_file, items, start):
    assert one_line_error(recipe_file(), items).startswith(start)


def test_a_bad_key_in_the_file_names_the_file_even_with_set(recipe_file):
    path = recipe_file(epochz=3)
    assert one_line_error(path, ["max_steps=4"]).startswith(f"{path}: unknown key 'epochz'")
