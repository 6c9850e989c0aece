"""``embedkit encode --ray`` with the tiny model and bad input (one line, exit status 2, before any cluster work)."""
from __future__ import annotations

import json
import socket
import subprocess
import sys

import numpy as np

from embedkit.distributed import EmbeddingsFolder

RUN_TIMEOUT = 600


def embedkit(*args: str) -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-m", "embedkit.cli.main", *args], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)
    return done.returncode, done.stdout, done.stderr


def test_other_options_start_over(ray_cluster, tiny_model_dir, tmp_path):
    """A rerun with another option (here --normalize) does not keep parts made without it."""
    source = tmp_path / "in.txt"
    source.write_text("".join(f"sentence {i}\n" for i in range(40)), encoding="utf-8")
    out = tmp_path / "emb"
    base = ("encode", "--ray", ray_cluster, "--model", str(tiny_model_dir), "--input", str(source), "--out", str(out),
            "--rows-per-part", "16")
    code, _, stderr = embedkit(*base)
    assert code == 0
    # --backend auto (the default) is chosen once for the whole run and recorded as chosen
    chosen = json.loads((out / "manifest.json").read_text())["identity"]["backend"]
    assert chosen != "auto" and f"backend auto -> {chosen}" in stderr
    code, stdout, _ = embedkit(*base, "--normalize")
    assert code == 0 and "starting over" in stdout and "normalize" in stdout and "kept" not in stdout
    _, embeddings = EmbeddingsFolder.open(out).load()
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-5)


# ----------------------------------------------------------------- bad input: one line, exit status 2

def one_line_error(*args: str) -> str:
    code, stdout, stderr = embedkit(*args)
    assert code == 2, (stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("embedkit: error: "), stderr
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_address(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("a\nb\n", encoding="utf-8")
    port = free_port()
    line = one_line_error("encode", "--ray", f"127.0.0.1:{port}", "--input", str(source), "--out", str(tmp_path / "o"))
    assert f"127.0.0.1:{port}" in line and "no Ray cluster answers" in line


def test_missing_input(tmp_path):
    line = one_line_error("encode", "--ray", "--input", str(tmp_path / "absent.txt"), "--out", str(tmp_path / "o"))
    assert "absent.txt" in line and "no such file" in line
    assert not (tmp_path / "o").exists()


def test_parquet_without_the_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "body": ["x", "y"]}), source)
    line = one_line_error("encode", "--ray", "--input", str(source), "--out", str(tmp_path / "o"))
    assert "docs.parquet" in line and "'text'" in line and "body" in line
    line = one_line_error("encode", "--ray", "--input", str(source), "--text-column", "body", "--id-column", "key",
                          "--out", str(tmp_path / "o"))
    assert "'key'" in line


def test_not_an_embeddings_folder(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("a\n", encoding="utf-8")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "notes.txt").write_text("mine")
    line = one_line_error("encode", "--ray", "--input", str(source), "--out", str(tmp_path / "o"))
    assert "refusing" in line
    assert (tmp_path / "o" / "notes.txt").read_text() == "mine"


def test_single_machine_options_refused(tmp_path):
    line = one_line_error("encode", "--ray", "--input", "x.txt", "--out", str(tmp_path / "o"), "--workers", "2")
    assert "--workers" in line
