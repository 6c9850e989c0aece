"""Without the data: `make test` says loudly that it skipped the end-to-end tests, `.ci/run` fails, and
`embedkit demo` says in one line what is missing and how to get it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from embedkit.cli.main import main

REPO = Path(__file__).resolve().parents[1]
A_TEST_ON_SHARED_DATA = "tests/data/test_data_get.py::test_the_shared_copy_verifies_and_is_not_downloaded_again"


def _pytest(tmp_path, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "EMBEDKIT_DATA": str(tmp_path / "no-data"), **env}
    environment.pop("EMBEDKIT_REQUIRE_DATA", None) if "EMBEDKIT_REQUIRE_DATA" not in env else None
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", A_TEST_ON_SHARED_DATA],
                          cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)


def test_skipped_end_to_end_tests_are_announced_loudly(tmp_path):
    run = _pytest(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    loud = [line for line in run.stdout.splitlines() if "end-to-end tests SKIPPED" in line]
    assert len(loud) == 1 and loud[0].startswith("!") and str(tmp_path / "no-data") in loud[0]
    assert "`make data` (embedkit data get stsb scifact nli wiki)" in loud[0]


def test_ci_fails_when_end_to_end_tests_cannot_find_the_data(tmp_path):
    assert "export EMBEDKIT_REQUIRE_DATA=1" in (REPO / ".ci" / "run").read_text()
    run = _pytest(tmp_path, EMBEDKIT_REQUIRE_DATA="1")
    assert run.returncode != 0 and "EMBEDKIT_REQUIRE_DATA=1 says the end-to-end tests must run here" in run.stdout


def test_demo_without_data_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EMBEDKIT_DATA", str(tmp_path / "no-data"))
    (tmp_path / "no-data" / "stsb").mkdir(parents=True)
    assert main(["demo"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("embedkit: error: the demo needs scifact under EMBEDKIT_DATA=")
    assert "embedkit data get scifact" in err
