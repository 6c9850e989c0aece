"""Fixtures for training tests: a tiny data folder (as EMBEDKIT_DATA) and recipes over the tiny model."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers import write_beir, write_stsb

SENTENCES = [
    f"{subject} {verb} {thing} {place}."
    for subject in ("The old man", "A young girl", "Our teacher", "My neighbour")
    for verb in ("reads", "paints", "carries", "finds")
    for thing in ("a red book", "the blue boat", "some fresh bread")
    for place in ("at home", "in the park")
]  # 96 distinct sentences


@pytest.fixture()
def data_dir(tmp_path, monkeypatch) -> Path:
    """A folder set as EMBEDKIT_DATA: wiki-like sentences, an STS-B style file, NLI-style triplets, a BEIR set."""
    root = tmp_path / "data"
    (root / "wiki").mkdir(parents=True)
    (root / "wiki" / "sentences.txt").write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    (root / "stsb").mkdir()
    write_stsb(root / "stsb" / "sts-train.csv")
    write_stsb(root / "stsb" / "sts-dev.csv")
    (root / "nli").mkdir()
    rows = ["sent0,sent1,hard_neg"] + [f"{a},{b},{c}" for a, b, c in zip(SENTENCES, SENTENCES[1:], SENTENCES[2:])]
    (root / "nli" / "triplets.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    write_beir(root / "beir", split="train")
    monkeypatch.setenv("EMBEDKIT_DATA", str(root))
    return root


@pytest.fixture()
def tiny_recipe(tiny_model_dir, data_dir):
    """``tiny_recipe(**changes)``: a fast simcse-unsup-like recipe dict on the tiny model."""
    return lambda **changes: _tiny_recipe(tiny_model_dir, **changes)


def _tiny_recipe(model_dir: Path, **changes) -> dict:
    recipe = {
        "name": "tiny",
        "model": str(model_dir),
        "data": {"kind": "sentences", "path": "wiki/sentences.txt"},
        "loss": {"name": "infonce", "temperature": 0.05},
        "batch_size": 8,
        "learning_rate": 1e-3,
        "max_steps": 6,
        "max_seq_length": 16,
        "save_steps": 2,
        "save_total_limit": 10,
        "logging_steps": 1,
        "seed": 7,
        "eval": {"sets": [], "before": False},
    }
    recipe.update(changes)
    return recipe


@pytest.fixture()
def recipe_file(tmp_path, tiny_recipe):
    """``recipe_file(**changes)``: the tiny recipe written to a YAML file; returns its path."""
    def write(**changes) -> Path:
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(tiny_recipe(**changes), sort_keys=False), encoding="utf-8")
        return path

    return write


@pytest.fixture(autouse=True)
def _one_torch_thread(monkeypatch):
    """One intra-op thread: on a shared CPU a 2-thread team spends its time waiting at barriers."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # for subprocesses
    yield
    torch.set_num_threads(threads)
