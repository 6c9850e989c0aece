"""Processes for the reliability tests and benchmark: writers, readers, a kill harness, a faulty CLI.

Run as ``python workers.py ROLE ...`` (real processes, real files, real signals); each prints or writes
one JSON report. Shared by tests/index/test_reliability.py and benchmarks/reliability_bench.py.

- ``write FOLDER WORKER BATCHES SIZE START``: create ``START.ready-WORKER``, wait for the file START, then
  add BATCHES batches of SIZE documents, each batch one ``IndexFolder.update`` (lock, load, add to both sides, save).
- ``read FOLDER STOP OUT [PAUSE]``: load and search in a loop until the file STOP exists; every load must
  be one complete state (both sides, whole batches, searchable); writes ``{"loads", "errors"}`` to OUT.
- ``kill FOLDER ROUNDS SEED OUT [LONGEST]``: fork a writer that saves in a loop, SIGKILL it after a random
  delay (up to LONGEST seconds), then check the folder loads, verifies and holds the state before or after
  the interrupted save.
- ``faulty ERRNO CALL NTH COUNTS -- ARGV...``: run ``embedkit ARGV`` with the NTH ``os.write`` or
  ``os.fsync`` (CALL) on a file of the index folder failing with ERRNO; NTH = 0 fails none. Writes the
  number of such calls made to COUNTS.
"""
from __future__ import annotations

import errno
import json
import os
import random
import signal
import sys
import time
import zlib
from pathlib import Path

DIM = 8
WORDS = ["apple", "river", "stone", "cloud", "green", "music", "paper", "tiger", "ocean", "light"]


def batch(prefix: str, size: int) -> tuple[list[str], "np.ndarray", list[str]]:
    """``size`` documents with ids ``<prefix>-<i>``, vectors and texts derived from the ids (reproducible)."""
    import numpy as np

    ids = [f"{prefix}-{i}" for i in range(size)]
    rng = np.random.default_rng(zlib.crc32(prefix.encode()))
    texts = [f"{WORDS[i % len(WORDS)]} {WORDS[(i * 7 + len(prefix)) % len(WORDS)]} common {doc_id}"
             for i, doc_id in enumerate(ids)]
    return ids, rng.standard_normal((size, DIM)).astype(np.float32), texts


def make_index(folder: Path, batches: int) -> Path:
    """An index folder of ``batches`` x 20 documents (ids ``init<b>-<i>``) with a BM25 side."""
    from embedkit.data import Document
    from embedkit.index import BM25Index, FaissIndex, IndexFolder

    index, docs = FaissIndex(DIM, "Flat"), []
    for b in range(batches):
        ids, vectors, texts = batch(f"init{b}", 20)
        index.add(ids, vectors, texts=texts)
        docs += [Document(i, "", t) for i, t in zip(ids, texts)]
    IndexFolder(index, BM25Index.from_documents(docs)).save(folder)
    return Path(folder)


def check_state(folder) -> tuple[int, str]:
    """(documents, generation) of a loaded ``IndexFolder``; raises AssertionError if it is not one complete state."""
    import numpy as np

    index, bm25 = folder.index, folder.bm25
    ids = index.ids()
    assert bm25 is not None and sorted(ids) == sorted(bm25.ids), "the two sides hold different documents"
    assert len(ids) == len(set(ids)), "an id is held twice"
    batches: dict[str, int] = {}
    for doc_id in ids:
        batches[doc_id.rsplit("-", 1)[0]] = batches.get(doc_id.rsplit("-", 1)[0], 0) + 1
    assert len(set(batches.values())) <= 1, f"a partial batch: {sorted(set(batches.values()))}"
    hits = index.search(np.ones((1, DIM), dtype=np.float32), k=10)[0]
    assert len(hits) == min(10, len(ids)) and all(h.id in index for h in hits), "a search missed documents"
    assert len(bm25.search(["common"], 5)[0]) == min(5, len(ids)), "BM25 missed documents"
    return len(ids), index.info()["generation"]


def run_writer(folder: str, worker: str, batches: int, size: int, start: str) -> None:
    from embedkit.index import IndexFolder

    Path(f"{start}.ready-{worker}").touch()  # imported: the benchmark's clock starts when all are ready
    while not os.path.exists(start):
        time.sleep(0.005)
    waited = 0.0
    for b in range(batches):
        ids, vectors, texts = batch(f"w{worker}b{b}", size)
        t = time.perf_counter()
        with IndexFolder.update(folder, wait=300) as state:
            waited += time.perf_counter() - t
            state.add_vectors(ids, vectors, texts=texts)
    print(json.dumps({"worker": worker, "batches": batches, "waited_s": round(waited, 3)}))


def run_reader(folder: str, stop: str, out: str, pause: float = 0.02) -> None:
    from embedkit.index import BM25Index, FaissIndex, IndexFolder

    loads, errors, counts = 0, [], set()
    while not os.path.exists(stop) or not loads:
        try:
            count, _ = check_state(IndexFolder.load(folder, mmap=loads % 2 == 1))
            counts.add(count)
            assert len(FaissIndex.load(folder)) >= count and len(BM25Index.load(folder)) >= count
            loads += 1
        except Exception as exc:  # any failure is a finding: report it, keep reading
            errors.append(f"{type(exc).__name__}: {exc}")
        time.sleep(pause)  # leave the writers some of the CPU
    Path(out).write_text(json.dumps({"loads": loads, "errors": errors[:20], "error_count": len(errors),
                                     "distinct_counts": len(counts)}))


def run_kill(folder: str, rounds: int, seed: int, out: str, longest: float = 0.25) -> None:
    """The kill harness: forks writers (so each round costs no interpreter start) and SIGKILLs them."""
    import threading

    from tqdm import tqdm

    from embedkit.index import IndexFolder

    # tqdm's default lock is a multiprocessing semaphore, which forked writers share with this process: a
    # writer killed while holding it (bm25s makes bars, hidden ones too) would hang the harness for good. A
    # thread lock is copied at fork instead, and with no monitor thread it is never held while forking.
    tqdm.monitor_interval = 0
    tqdm.set_lock(threading.RLock())

    rng = random.Random(seed)
    report = {"rounds": 0, "failures": [], "after": 0, "before": 0, "saves": 0}
    for r in range(rounds):
        base, _ = check_state(IndexFolder.load(folder))
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the writer: update after update until killed; "s" before each, "e" after it is saved
            os.close(read_end)
            try:
                for n in range(10**6):
                    ids, vectors, texts = batch(f"k{r}n{n}", 20)
                    os.write(write_end, b"s")
                    with IndexFolder.update(folder, wait=None) as state:
                        state.add_vectors(ids, vectors, texts=texts)
                    os.write(write_end, b"e")
            except BaseException:
                os.write(write_end, b"x")
            os._exit(1)
        os.close(write_end)
        time.sleep(rng.uniform(0.01, longest))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        with os.fdopen(read_end, "rb") as f:
            marks = f.read().decode()
        saved, interrupted = marks.count("e"), marks.endswith("s")
        problems = IndexFolder.verify(folder)
        if "x" in marks:
            report["failures"].append({"round": r, "error": "the writer failed before it was killed"})
        try:
            count, _ = check_state(IndexFolder.load(folder))
            done = (count - base) // 20
            if problems or not saved <= done <= saved + interrupted:
                report["failures"].append({"round": r, "problems": problems, "saved": saved, "found": done})
            report["after" if done > saved else "before"] += interrupted
        except Exception as exc:
            report["failures"].append({"round": r, "error": f"{type(exc).__name__}: {exc}"})
        report["rounds"] += 1
        report["saves"] += saved
    Path(out).write_text(json.dumps(report))


def run_faulty(err: str, call: str, nth: int, counts: str, argv: list[str]) -> None:
    """``embedkit ARGV`` with one injected I/O fault on a file of the index folder (the first ARGV path)."""
    from embedkit.cli.main import main

    folder = os.path.realpath(next(a for a in argv if os.path.isdir(a)))
    seen = {"write": 0, "fsync": 0}
    real = {"write": os.write, "fsync": os.fsync}

    def in_folder(fd: int) -> bool:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return False
        return target == folder or target.startswith(folder + os.sep)

    def wrap(name):
        def faulty(fd, *args):
            if in_folder(fd):
                seen[name] += 1
                if name == call and seen[name] == nth:
                    raise OSError(getattr(errno, err), os.strerror(getattr(errno, err)))
            return real[name](fd, *args)
        return faulty

    os.write, os.fsync = wrap("write"), wrap("fsync")
    try:
        code = main(argv)
    finally:
        os.write, os.fsync = real["write"], real["fsync"]
        Path(counts).write_text(json.dumps(seen))
    sys.exit(code)


if __name__ == "__main__":
    role, args = sys.argv[1], sys.argv[2:]
    if role == "write":
        run_writer(args[0], args[1], int(args[2]), int(args[3]), args[4])
    elif role == "read":
        run_reader(args[0], args[1], args[2], *map(float, args[3:]))
    elif role == "kill":
        run_kill(args[0], int(args[1]), int(args[2]), args[3], *map(float, args[4:]))
    elif role == "faulty":
        run_faulty(args[0], args[1], int(args[2]), args[3], args[5:])
    else:
        sys.exit(f"unknown role {role!r}")
