"""Training runs on the tiny random model: output folder, model card, kill-and-resume, NaN stop, bad data."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from embedkit.cli.main import main as cli_main
from embedkit.errors import DataError, ModelError
from embedkit.training import load_recipe, run_recipe
from embedkit.training.callbacks import NonFiniteLossError
from embedkit.training.checkpoints import last_complete_checkpoint

REPO = Path(__file__).resolve().parents[2]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_run_writes_loadable_model_with_card_and_results(recipe_file, tmp_path):
    from sentence_transformers import SentenceTransformer

    sets = [{"kind": "sts", "path": "stsb", "split": "dev", "during": False}]
    recipe = load_recipe(recipe_file(max_steps=2, eval={"sets": sets}))
    out = tmp_path / "out"
    result = run_recipe(recipe, out)

    model = SentenceTransformer(str(out))
    assert model.encode(["a sentence"]).shape == (1, 32)
    assert model.max_seq_length == 64  # the base model's length, not the training length (16)
    assert result.steps == 2 and (out / "checkpoint-2" / "trainer_state.json").exists()
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "| stsb-dev | spearman |" in card and "loss:\n  name: infonce" in card
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert set(saved["before"]) == set(saved["after"]) == {"stsb-dev"}
    assert -100 <= saved["after"]["stsb-dev"]["spearman"] <= 100
    assert load_recipe(out / "recipe.yaml") == recipe


def test_train_writes_a_record_and_scores_test_sets_only_when_final(recipe_file, data_dir, tmp_path):
    (data_dir / "stsb" / "sts-test.csv").write_text((data_dir / "stsb" / "sts-dev.csv").read_text())
    spec = {"sets": [{"kind": "sts", "path": "stsb", "split": "dev"}],
            "test_sets": [{"kind": "sts", "path": "stsb", "split": "test"}]}
    recipe = recipe_file(max_steps=1, eval=spec)
    assert cli_main(["train", str(recipe), "--out", str(tmp_path / "chosen")]) == 0
    chosen = json.loads((tmp_path / "chosen" / "record.json").read_text())
    assert set(chosen["metrics"]["before"]) == set(chosen["metrics"]["after"]) == {"stsb-dev"}

    record_path = tmp_path / "records" / "final.json"
    assert cli_main(["train", str(recipe), "--out", str(tmp_path / "final"), "--set", "eval.final=true",
                     "--record", str(record_path)]) == 0
    record = json.loads(record_path.read_text())
    out = tmp_path / "final"
    assert not (out / "record.json").exists()
    assert set(record["metrics"]["after"]) == {"stsb-dev", "stsb-test"}
    results = json.loads((out / "results.json").read_text())
    assert record["metrics"]["after"] == results["after"] and record["metrics"]["before"] == results["before"]
    assert record["metrics"]["steps"] == 1 and record["metrics"]["train_seconds"] == results["train_seconds"]
    assert record["details"]["results_json"] == results
    assert record["details"]["recipe_yaml"] == (out / "recipe.yaml").read_text()
    assert record["recipe"]["eval"]["final"] is True and record["details"]["seed"] == 7
    assert record["command"].startswith("embedkit train ") and "--set eval.final=true" in record["command"]
    assert record["cpu"]["model"] and record["packages"]["torch"] and record["commit"]


def test_out_folder_with_checkpoints_needs_resume(recipe_file, tmp_path):
    out = tmp_path / "out"
    (out / "checkpoint-2").mkdir(parents=True)
    assert cli_main(["train", str(recipe_file()), "--out", str(out)]) == 2


def test_malformed_training_data_fails_before_the_model_loads(recipe_file, data_dir, monkeypatch, capsys):
    bad = data_dir / "nli" / "bad.csv"
    bad.write_text("sent0,sent1,hard_neg\na,b,c\n\"unclosed,b,c\n", encoding="utf-8")

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the data was checked")

    monkeypatch.setattr("embedkit.models.load_model", no_model)
    recipe = load_recipe(recipe_file(data={"kind": "nli", "path": "nli/bad.csv"}))
    with pytest.raises(DataError) as info:
        run_recipe(recipe, data_dir / "out")
    assert "bad.csv" in str(info.value) and "line 3" in str(info.value)

    assert cli_main(["train", str(recipe_file(data={"kind": "nli", "path": "nli/bad.csv"}))]) == 2
    assert "bad.csv, line 3" in capsys.readouterr().err


def test_missing_evaluation_data_fails_before_the_model_loads(recipe_file, tmp_path, monkeypatch):
    monkeypatch.setattr("embedkit.models.load_model", lambda *a, **k: pytest.fail("model loaded first"))
    recipe = load_recipe(recipe_file(eval={"sets": [{"kind": "sts", "path": "nowhere"}]}))
    with pytest.raises(DataError, match="nowhere"):
        run_recipe(recipe, tmp_path / "out")


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(recipe_file, tmp_path, monkeypatch):
    from embedkit.training.loss_specs import InfoNCESpec

    build = InfoNCESpec.build

    def nan_from_fifth_step(self, model):
        loss = build(self, model)
        original, calls = loss.forward, {"n": 0}

        def forward(features, labels=None):
            calls["n"] += 1
            value = original(features, labels)
            return value * float("nan") if calls["n"] >= 5 else value

        loss.forward = forward
        return loss

    monkeypatch.setattr(InfoNCESpec, "build", nan_from_fifth_step)
    out = tmp_path / "out"
    with pytest.raises(NonFiniteLossError) as info:
        run_recipe(load_recipe(recipe_file(max_steps=10)), out)
    message = str(info.value)
    assert "nan at step 5" in message and "checkpoint-4" in message and "\n" not in message
    assert last_complete_checkpoint(out) == out / "checkpoint-4"
    assert not (out / "checkpoint-5").exists() and not (out / "checkpoint-6").exists()
    assert not (out / "model.safetensors").exists()  # the NaN weights were never saved
    assert all(torch.isfinite(t).all() for t in weights(out / "checkpoint-4").values())


def test_bad_model_fails_with_one_line(recipe_file, tmp_path):
    with pytest.raises(ModelError):
        run_recipe(load_recipe(recipe_file(model=str(tmp_path / "no-model"))), tmp_path / "out")


def _train_command(recipe: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "embedkit.cli.main", "train", str(recipe), "--out", str(out), *extra]


def test_kill_and_resume_matches_uninterrupted_run(recipe_file, tmp_path):
    """SIGKILL a run once its step-4 checkpoint is being written, resume it, compare with a clean run."""
    sets = [{"kind": "sts", "path": "stsb", "split": "dev", "during": False}]
    recipe = recipe_file(max_steps=12, save_steps=2, eval={"sets": sets, "before": False})
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    killed = tmp_path / "killed"
    process = subprocess.Popen(_train_command(recipe, killed), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.time() + 600
    while not (killed / "checkpoint-4").exists():
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "no checkpoint-4 within 10 minutes"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "results.json").exists(), "the run finished before it was killed"
    interrupted_at = last_complete_checkpoint(killed)
    assert interrupted_at is not None and interrupted_at.name in ("checkpoint-2", "checkpoint-4")

    # Resume and the uninterrupted run in this process: only the kill needs a process of its own.
    run_recipe(load_recipe(recipe), killed, resume=True)
    run_recipe(load_recipe(recipe), tmp_path / "clean")

    resumed_results = json.loads((killed / "results.json").read_text())
    clean_results = json.loads((tmp_path / "clean" / "results.json").read_text())
    assert resumed_results["steps"] == clean_results["steps"] == 12
    assert resumed_results["resumed_from"] is not None
    assert abs(resumed_results["after"]["stsb-dev"]["spearman"] - clean_results["after"]["stsb-dev"]["spearman"]) < 0.1
    a, b = weights(killed), weights(tmp_path / "clean")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4, msg=name)
