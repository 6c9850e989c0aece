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


SHARED_DATASETS = ("stsb", "scifact", "nli", "wiki")  # what the end-to-end tests read
NO_DATA = "shared data not found"
# Set by .ci/run: there the data is beside the clone, and a test that cannot find it must fail, not skip.
REQUIRE_DATA = "EMBEDKIT_REQUIRE_DATA"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder (EMBEDKIT_DATA, default ../shared/data beside the checkout); e2e tests skip
    without it (and fail with EMBEDKIT_REQUIRE_DATA=1). The summary says so loudly (below)."""
    from embedkit.paths import data_dir

    root = data_dir()
    missing = [name for name in SHARED_DATASETS if not (root / name).is_dir()]
    if missing:
        message = f"{NO_DATA} at {root} (missing {', '.join(missing)})"
        if os.environ.get(REQUIRE_DATA) == "1":
            pytest.fail(f"{message}; {REQUIRE_DATA}=1 says the end-to-end tests must run here", pytrace=False)
        pytest.skip(message)
    return root


def pytest_terminal_summary(terminalreporter):
    """A green run that skipped the end-to-end tests for want of data tested less: say so in one loud line."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if NO_DATA in str(r.longrepr)]
    if skipped:
        from embedkit.paths import data_dir

        terminalreporter.write_sep(
            "!", f"{len(skipped)} end-to-end tests SKIPPED: no data in {data_dir()}; get it with `make data` (embedkit "
                 f"data get {' '.join(SHARED_DATASETS)}) or set EMBEDKIT_DATA", red=True, bold=True)
