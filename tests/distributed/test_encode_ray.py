"""``embedkit encode --ray`` on a real two-node Ray cluster with the default model: equality with the
single-process engine, a worker killed mid-run, a driver killed mid-run and resumed."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from embedkit.distributed import EmbeddingsFolder
from embedkit.distributed.sources import default_rows_per_part

pytestmark = pytest.mark.e2e
TEXTS = 2000  # Wikipedia sentences: 8 parts of 256 rows, a few seconds each on one CPU
PARTS = -(-TEXTS // default_rows_per_part(TEXTS))
RUN_TIMEOUT = 600
EXACT = ("--backend", "torch")  # the engine's float32 path (the CLI's default, auto, may choose an int8 one)


def embedkit(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "embedkit.cli.main", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=RUN_TIMEOUT)
    return process.returncode, out, err


@pytest.fixture(scope="module")
def wiki_input(shared_data, tmp_path_factory) -> Path:
    lines = (shared_data / "wiki" / "wiki1m_for_simcse.first11914.txt").read_text(encoding="utf-8").splitlines()
    path = tmp_path_factory.mktemp("wiki") / "wiki.txt"
    path.write_text("\n".join(lines[:TEXTS]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(ray_cluster, wiki_input, tmp_path_factory) -> tuple[list[str], np.ndarray]:
    """An uninterrupted run of the CLI on the cluster: what every interrupted run must reproduce exactly."""
    out = tmp_path_factory.mktemp("reference") / "emb"
    code, stdout, stderr = finish(embedkit("encode", "--ray", ray_cluster, "--input", str(wiki_input), "--out", str(out),
                                             *EXACT))
    assert code == 0, stderr
    assert f"wrote {TEXTS} x 384" in stdout and "2 actors x 1 CPU" in stdout
    return EmbeddingsFolder.open(out).load()


def parts_written(folder: Path) -> int:
    return len(list(folder.glob("part-*.parquet")))


def wait_for_parts(folder: Path, process: subprocess.Popen, at_least: int = 1) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT
    while parts_written(folder) < at_least:
        assert process.poll() is None, f"the run ended before writing a part: {process.communicate()}"
        assert time.monotonic() < deadline, "no part written in time"
        time.sleep(0.05)


def test_equals_single_process_engine(reference, wiki_input):
    from embedkit.encoding import encode
    from embedkit.models import load_model

    ids, embeddings = reference
    texts = wiki_input.read_text(encoding="utf-8").splitlines()
    model = load_model("default")
    expected = encode(model, texts)
    assert ids == [str(i) for i in range(TEXTS)]  # same ids, input order
    cosine = (embeddings * expected).sum(1) / np.linalg.norm(embeddings, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() >= 0.9999
    # each actor runs the engine as is: a part's rows are the bytes one process makes from that part alone
    size = default_rows_per_part(TEXTS)
    second = slice(size, 2 * size)
    assert np.array_equal(embeddings[second], encode(model, texts[second], workers=1, threads=1))


def test_worker_killed_mid_run_is_redone(ray_cluster, wiki_input, reference, tmp_path):
    """SIGKILL one encoder actor's process mid-run: Ray restarts it, its part is redone, the output is identical."""
    out = tmp_path / "emb"
    run = embedkit("encode", "--ray", ray_cluster, "--input", str(wiki_input), "--out", str(out), *EXACT)
    wait_for_parts(out, run)
    encoders = [p for p in psutil.Process().children(recursive=True)  # this session's cluster only
                if any("PartEncoder" in part for part in _cmdline(p))]
    assert encoders, "no encoder actor process found"
    victim = encoders[0]
    victim.send_signal(signal.SIGKILL)
    assert parts_written(out) < PARTS, "the run finished before the kill; the test proves nothing"
    code, stdout, stderr = finish(run)
    assert code == 0, stderr
    assert not victim.is_running()
    ids, embeddings = EmbeddingsFolder.open(out).load()
    assert ids == reference[0]
    assert np.array_equal(embeddings, reference[1])


def test_driver_killed_mid_run_resumes(ray_cluster, wiki_input, reference, tmp_path):
    """SIGKILL the driver after its first part; running the same command again keeps the written parts,
    does the rest, and the output equals the uninterrupted run's, bit for bit."""
    out = tmp_path / "emb"
    args = ("encode", "--ray", ray_cluster, "--input", str(wiki_input), "--out", str(out), *EXACT)
    run = embedkit(*args)
    wait_for_parts(out, run)
    run.send_signal(signal.SIGKILL)
    run.wait()
    kept = parts_written(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest["complete"] and 1 <= kept < len(manifest["parts"])
    code, stdout, stderr = finish(embedkit(*args))
    assert code == 0, stderr
    resumed = int(stdout.split("; ")[-1].split(" part(s) kept")[0])
    assert resumed >= kept  # parts finished while the driver was dying are kept too
    ids, embeddings = EmbeddingsFolder.open(out).load()
    assert ids == reference[0]
    assert np.array_equal(embeddings, reference[1])


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []
