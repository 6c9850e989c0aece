"""study.py --continue-from: a final starts from a recorded run's checkpoints only when the two recipes agree
outside their evaluation sets, so a reused dev run is exactly the chosen recipe at that seed."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from embedkit.records import make_record, write_record

from helpers import load_script

TRAINED = {"learning_rate": 1e-4, "seed": 42, "max_steps": 200, "eval": {"sets": ["stsb-dev"]}}


def _study(tmp_path: Path, monkeypatch):
    study = load_script("results/generative/study.py")
    monkeypatch.setattr(study, "HERE", tmp_path / "records")
    monkeypatch.setattr(study, "RUNS", tmp_path / "runs")
    write_record(tmp_path / "records" / "grace-runs" / "dev-lr1e-4.json",
                 make_record("grace-dev-lr1e-4", {}, "test", 0.0, recipe=TRAINED))
    checkpoint = tmp_path / "runs" / "grace" / "dev-lr1e-4" / "checkpoint-200"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 200}))
    return study


def _recipe(**changes):
    return SimpleNamespace(model_dump=lambda mode: {**TRAINED, **changes})


def test_the_same_recipe_with_other_evaluation_sets_continues_from_the_run(tmp_path, monkeypatch):
    study = _study(tmp_path, monkeypatch)
    out = tmp_path / "runs" / "grace" / "seed-42"
    study._copy_trained_run("grace", "dev-lr1e-4", _recipe(eval={"sets": [], "test_sets": ["stsb-test"]}), out)
    assert (out / "checkpoint-200" / "trainer_state.json").is_file()


def test_a_recipe_that_trains_differently_is_refused(tmp_path, monkeypatch):
    study = _study(tmp_path, monkeypatch)
    with pytest.raises(SystemExit, match="differs from this one in seed"):
        study._copy_trained_run("grace", "dev-lr1e-4", _recipe(seed=43), tmp_path / "runs" / "grace" / "seed-43")
    assert not (tmp_path / "runs" / "grace" / "seed-43").exists()
