"""``embedkit serve`` refuses bad options and folders with one line and exit status 2."""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from serve.servehelpers import ROOT, server_env


def _serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "embedkit.cli.main", "serve", *args], capture_output=True, text=True,
                          env=server_env(), cwd=ROOT, timeout=300)


@pytest.mark.parametrize("args, message", [
    (["{index}", "--max-batch", "0"], "max_batch"),
    (["{index}", "--max-wait-ms", "-1"], "max_wait_ms"),
    (["{index}", "--max-k", "0"], "max_k"),
    (["{index}", "--token-file", "{missing}"], "cannot read the token file"),
    (["{index}", "--token-file", "{short_token}"], "at least 16 characters"),
    (["bad/name={index}"], "index name 'bad/name'"),
    (["a={index}", "a={index}"], "served twice"),
    (["{missing}"], "no such embedkit index folder"),
    (["{index}", "--port", "70000"], "--port must be in 0..65535"),
])
def test_bad_options_are_one_line(fresh_index, tmp_path, args, message):
    short = tmp_path / "short"
    short.write_text("abc\n")
    values = {"index": str(fresh_index), "missing": str(tmp_path / "missing"), "short_token": str(short)}
    result = _serve(*[a.format(**values) for a in args])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("embedkit: error:") and message in lines[-1], lines
    assert "Traceback" not in result.stderr


def test_a_port_in_use_is_one_line(fresh_index):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        result = _serve(str(fresh_index), "--port", str(taken.getsockname()[1]))
    assert result.returncode == 2 and "cannot listen on 127.0.0.1:" in result.stderr.strip().splitlines()[-1]
