"""Shared fixtures: a tiny seeded random model (fast unit tests) and the real data folder (e2e tests)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import make_tiny_model_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture()
def tiny_model(tiny_model_dir):
    from embedkit.models import load_model

    return load_model(str(tiny_model_dir), device="cpu")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets an empty embedding cache, so no test reads another's embeddings."""
    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "embedkit-cache"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder (EMBEDKIT_DATA, default ../shared/data); e2e tests skip without it."""
    from embedkit.paths import data_dir

    root = data_dir()
    if not (root / "stsb" / "sts-test.csv").exists():
        pytest.skip(f"shared data not found at {root}")
    return root
