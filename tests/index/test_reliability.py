"""Nothing lost under concurrency, crashes and I/O faults: real processes on real index folders.

The processes are tests/index/workers.py (also run, with larger counts, by benchmarks/reliability_bench.py).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from index import workers
from index.ixhelpers import subprocess_env

from embedkit.index import FaissIndex, IndexFolder

WORKERS = Path(workers.__file__)


def spawn(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKERS), *map(str, args)], env=subprocess_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def expected_ids(prefixes) -> list[str]:
    return sorted(i for p in prefixes for i in workers.batch(p, 20)[0])


def test_four_writers_and_two_readers(tmp_path):
    """4 processes x 25 batches x 20 documents onto 1,000: exactly 3,000 after, each id once; readers
    loading and searching all the while never fail and never see a partial state."""
    folder = workers.make_index(tmp_path / "ix", 50)
    start, stop = tmp_path / "start", tmp_path / "stop"
    readers = [spawn("read", folder, stop, tmp_path / f"reader{r}.json") for r in range(2)]
    writers = [spawn("write", folder, w, 25, 20, start) for w in range(4)]
    start.touch()
    try:
        for w in writers:
            out, err = w.communicate(timeout=900)
            assert w.returncode == 0, err
    finally:
        stop.touch()
        for r in readers:
            _, err = r.communicate(timeout=300)
            assert r.returncode == 0, err
    final = IndexFolder.load(folder)
    want = expected_ids([f"init{b}" for b in range(50)] + [f"w{w}b{b}" for w in range(4) for b in range(25)])
    assert len(final.index) == 3000 and sorted(final.index.ids()) == want and sorted(final.bm25.ids) == want
    assert IndexFolder.verify(folder) == [] and IndexFolder.leftovers(folder) == []
    for r in range(2):
        report = json.loads((tmp_path / f"reader{r}.json").read_text())
        assert report["error_count"] == 0, report["errors"]
        assert report["loads"] > 0
    # the readers ran while the writers did: between them they saw states other than the first and last
    assert sum(json.loads((tmp_path / f"reader{r}.json").read_text())["distinct_counts"] for r in range(2)) > 2


def test_two_cli_adds_at_the_same_moment(tmp_path):
    """The issue's reproduction: two `embedkit index add` of 500 vectors started together onto 1,000."""
    folder = tmp_path / "ix"
    rng = np.random.default_rng(0)
    base = FaissIndex(16, "Flat")
    base.add([f"base{i}" for i in range(1000)], rng.standard_normal((1000, 16)).astype(np.float32))
    base.save(folder)
    procs = []
    for name in ("a", "b"):
        np.save(tmp_path / f"{name}.npy", rng.standard_normal((500, 16)).astype(np.float32))
        (tmp_path / f"{name}.ids").write_text("".join(f"{name}{i}\n" for i in range(500)))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "embedkit.cli.main", "index", "add", str(folder), "--embeddings",
             str(tmp_path / f"{name}.npy"), "--ids", str(tmp_path / f"{name}.ids"), "--wait", "120"],
            env=subprocess_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outputs.append(out.strip())
    assert sorted(outputs) == ["added 500 vectors; the index now holds 1500",
                               "added 500 vectors; the index now holds 2000"]
    final = FaissIndex.load(folder, verify=True)
    assert sorted(final.ids()) == sorted([f"base{i}" for i in range(1000)] + [f"{n}{i}" for n in "ab" for i in range(500)])
    assert IndexFolder.verify(folder) == []


def test_sigkill_at_random_points_of_50_saves(tmp_path):
    """A writer killed at a random moment, 50 times: the folder always loads and verifies, holding the
    state before or after the save that was cut (checked against the writer's own save marks)."""
    folder = workers.make_index(tmp_path / "ix", 10)
    report_path = tmp_path / "kill.json"
    proc = spawn("kill", folder, 50, 1234, report_path)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    report = json.loads(report_path.read_text())
    assert report["rounds"] == 50 and report["failures"] == [], report
    assert report["saves"] > 0 and report["before"] + report["after"] > 0  # kills did land inside saves
    with IndexFolder.update(folder) as state:  # the next writer removes what the killed ones left
        state.remove(["init0-0"])
    assert IndexFolder.leftovers(folder) == [] and IndexFolder.verify(folder) == []


def faulty_run(folder: Path, tmp_path: Path, err: str, call: str, nth: int) -> tuple[int, str, dict]:
    counts = tmp_path / "counts.json"
    proc = spawn("faulty", err, call, nth, counts, "--", "index", "remove", folder, "--ids", "init0-0", "init1-3")
    _, stderr = proc.communicate(timeout=120)
    return proc.returncode, stderr, json.loads(counts.read_text())


# (errno, call, which of the calls a clean save makes: first, middle, last, or the one before the last)
FAULTS = [("ENOSPC", "write", "middle"), ("EIO", "write", "last"), ("EIO", "fsync", "first"),
          ("EIO", "fsync", "before last"), ("EIO", "fsync", "last")]


def test_io_faults_fail_in_one_line_and_keep_the_index(tmp_path):
    """A disk-full or I/O error at a write or a flush of a save: one error line, exit 2, and the index as it
    was. The last flush (of the folder, after the manifest switch) is the one fault that leaves the new
    state, and the line says so. (benchmarks/reliability_bench.py injects every call of every kind.)"""
    import errno

    folder = workers.make_index(tmp_path / "ix", 5)
    shutil.copytree(folder, tmp_path / "dry")
    code, _, counts = faulty_run(tmp_path / "dry", tmp_path, "EIO", "write", 0)  # the calls a clean save makes
    assert code == 0 and counts["write"] >= 5 and counts["fsync"] >= 8
    before = IndexFolder.load(folder)
    generation, ids = before.index.info()["generation"], sorted(before.index.ids())
    for err, call, which in FAULTS:
        nth = {"first": 1, "middle": counts[call] // 2, "last": counts[call], "before last": counts[call] - 1}[which]
        code, stderr, _ = faulty_run(folder, tmp_path, err, call, nth)
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith(f"embedkit: error: {folder}: "), stderr
        assert os.strerror(getattr(errno, err)) in lines[0]
        assert IndexFolder.verify(folder) == []
        state = IndexFolder.load(folder)
        if (call, which) == ("fsync", "last"):
            assert "saved, but the folder could not be flushed" in lines[0]
            assert "init0-0" not in state.index and state.index.info()["generation"] != generation
        else:
            assert "the index is unchanged" in lines[0]
            assert state.index.info()["generation"] == generation and sorted(state.index.ids()) == ids
            assert sorted(state.bm25.ids) == ids
    with IndexFolder.update(folder) as state:  # the next clean writer succeeds and tidies up
        state.remove(["init2-0"])
    assert IndexFolder.leftovers(folder) == [] and IndexFolder.verify(folder) == []
