"""Index folders under concurrency, crashes, I/O faults and hostile input, and what the writer lock costs.

Each part writes one record under results/index/ (``results/index/tables.py`` turns them into the
reliability table of benchmarks/README.md). The processes are tests/index/workers.py, the same ones the
tests run with smaller counts:

    python benchmarks/reliability_bench.py writers --writers 4 --batches 25   # + 2 readers, onto 1,000 documents
    python benchmarks/reliability_bench.py kill --rounds 200                   # SIGKILL at random points of saves
    python benchmarks/reliability_bench.py faults                              # every write and flush of a save
    python benchmarks/reliability_bench.py fuzz --examples 2000                # per loader, fresh random inputs
    python benchmarks/reliability_bench.py lock --repeats 30                   # lock vs no lock on one `index add`
    python benchmarks/reliability_bench.py save --sizes 1000 20000             # a save vs bare faiss.write_index
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import describe_load, interleaved, median, timed  # noqa: E402
from index import workers  # noqa: E402
from index.ixhelpers import subprocess_env  # noqa: E402

from embedkit.records import recording  # noqa: E402

RESULTS = ROOT / "results" / "index"
WORKERS = Path(workers.__file__)


def spawn(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKERS), *map(str, args)], env=subprocess_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_writers(args, tmp: Path) -> None:
    from embedkit.index import IndexFolder

    base = 1000
    folder = workers.make_index(tmp / "ix", base // 20)
    start, stop = tmp / "start", tmp / "stop"
    with recording(RESULTS / "reliability-writers.json", "index-reliability-writers", sys.argv) as rec:
        readers = [spawn("read", folder, stop, tmp / f"reader{r}.json") for r in range(args.readers)]
        writers = [spawn("write", folder, w, args.batches, 20, start) for w in range(args.writers)]

        while not all(Path(f"{start}.ready-{w}").exists() for w in range(args.writers)):
            time.sleep(0.01)  # time the writing, not the writers' imports

        def run_all() -> list[dict]:
            start.touch()
            reports = []
            for w in writers:
                out, err = w.communicate()
                if w.returncode:
                    raise SystemExit(f"writer failed: {err}")
                reports.append(json.loads(out))
            return reports

        reader_cpu0 = [sum(psutil.Process(r.pid).cpu_times()[:2]) for r in readers]
        run, reports = timed("writers", run_all)
        seconds = run.seconds
        reader_cpu = sum(sum(psutil.Process(r.pid).cpu_times()[:2]) for r in readers) - sum(reader_cpu0)
        run.others_cpu = max(0.0, run.others_cpu - reader_cpu / seconds)  # the readers are ours, not others'
        stop.touch()
        for r in readers:
            r.communicate()
        final = IndexFolder.load(folder)
        want = {i for p in [f"init{b}" for b in range(base // 20)]
                + [f"w{w}b{b}" for w in range(args.writers) for b in range(args.batches)]
                for i in workers.batch(p, 20)[0]}
        found = final.index.ids()
        read = [json.loads((tmp / f"reader{r}.json").read_text()) for r in range(args.readers)]
        rec.metrics.update({
            "writers": args.writers, "batches_per_writer": args.batches, "documents_per_batch": 20,
            "documents_before": base, "documents_expected": len(want), "documents_found": len(found),
            "lost": len(want - set(found)), "duplicated": len(found) - len(set(found)),
            "bm25_matches": sorted(final.bm25.ids) == sorted(found), "verify_problems": len(IndexFolder.verify(folder)),
            "updates_per_second": round(args.writers * args.batches / seconds, 2), "seconds": round(seconds, 2),
            "readers": args.readers, "reader_loads": sum(r["loads"] for r in read),
            "reader_errors": sum(r["error_count"] for r in read),
            "writer_wait_seconds": round(sum(r["waited_s"] for r in reports), 2)})
        rec.details["load"] = describe_load([run])
    print(json.dumps(rec.metrics))


def run_kill(args, tmp: Path) -> None:
    from embedkit.index import IndexFolder

    folder = workers.make_index(tmp / "ix", 10)
    with recording(RESULTS / "reliability-kill.json", "index-reliability-kill", sys.argv) as rec:
        proc = spawn("kill", folder, args.rounds, args.seed, tmp / "kill.json", args.longest)
        _, err = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"kill harness failed: {err}")
        report = json.loads((tmp / "kill.json").read_text())
        with IndexFolder.update(folder) as state:
            state.remove(["init0-0"])
        rec.metrics.update({"rounds": report["rounds"], "survived": report["rounds"] - len(report["failures"]),
                            "cut_saves_found_before": report["before"], "cut_saves_found_after": report["after"],
                            "completed_saves": report["saves"], "leftovers_after_next_writer":
                                len(IndexFolder.leftovers(folder)), "seed": args.seed,
                            "longest_delay_s": args.longest})
        rec.details["failures"] = report["failures"][:20]
    print(json.dumps(rec.metrics))


def _faulty(folder: Path, tmp: Path, err: str, call: str, nth: int) -> tuple[int, list[str], dict]:
    counts = tmp / "counts.json"
    proc = spawn("faulty", err, call, nth, counts, "--", "index", "remove", folder, "--ids", "init0-0")
    _, stderr = proc.communicate()
    return proc.returncode, stderr.strip().splitlines(), json.loads(counts.read_text())


def run_faults(args, tmp: Path) -> None:
    """Every write and every flush of one `index remove` (both sides rewritten), failed in turn."""
    from embedkit.index import IndexFolder

    source = workers.make_index(tmp / "source", 5)
    _, _, counts = _faulty(shutil.copytree(source, tmp / "dry"), tmp, "EIO", "write", 0)
    with recording(RESULTS / "reliability-faults.json", "index-reliability-faults", sys.argv) as rec:
        injected = passed = 0
        failures = []
        for err, call in (("ENOSPC", "write"), ("EIO", "write"), ("EIO", "fsync")):
            folder = tmp / f"ix-{err}-{call}"
            shutil.copytree(source, folder)
            generation = IndexFolder.load(folder).index.info()["generation"]
            for nth in range(1, counts[call] + 1):
                code, lines, _ = _faulty(folder, tmp, err, call, nth)
                injected += 1
                state = IndexFolder.load(folder)
                after_switch = len(lines) == 1 and "saved, but" in lines[0]
                good = (code == 2 and len(lines) == 1 and lines[0].startswith("embedkit: error: ")
                        and os.strerror(getattr(errno, err)) in lines[0] and IndexFolder.verify(folder) == []
                        and (after_switch or state.index.info()["generation"] == generation)
                        and (not after_switch or (call == "fsync" and nth == counts[call])))
                passed += good
                if not good:
                    failures.append({"errno": err, "call": call, "nth": nth, "code": code, "stderr": lines[-3:]})
                if after_switch:
                    generation = state.index.info()["generation"]
        rec.metrics.update({"writes_per_save": counts["write"], "flushes_per_save": counts["fsync"],
                            "faults_injected": injected, "failed_cleanly": passed})
        rec.details["failures"] = failures[:20]
    print(json.dumps(rec.metrics))


def run_fuzz(args, tmp: Path) -> None:
    tally = tmp / "tally.json"
    env = {**subprocess_env(), "EMBEDKIT_FUZZ_EXAMPLES": str(args.examples), "EMBEDKIT_FUZZ_RANDOM": "1",
           "EMBEDKIT_FUZZ_TALLY": str(tally)}
    with recording(RESULTS / "reliability-fuzz.json", "index-reliability-fuzz", sys.argv) as rec:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "fuzz")],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        cases = json.loads(tally.read_text())
        summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        rec.metrics.update({"cases": sum(cases.values()), "loaders": len(cases), "per_loader": cases,
                            "examples_per_loader": args.examples, "failed_tests": 0 if proc.returncode == 0 else summary})
        if proc.returncode:
            rec.details["output_tail"] = proc.stdout[-4000:]
    print(json.dumps(rec.metrics))


def run_lock(args, tmp: Path) -> None:
    """The lock's own cost (acquire + release, uncontended), and one `index add` with and without it."""
    import embedkit.index.folder as folder_module
    import embedkit.index.storage as storage_module
    from embedkit.cli.main import main
    from embedkit.index import IndexFolder
    from embedkit.index.lock import writer_lock

    folder = workers.make_index(tmp / "ix", 50)
    ids, vectors, texts = workers.batch("lockbench", 20)
    corpus = tmp / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in zip(ids, texts)))
    np.save(tmp / "vectors.npy", vectors)

    def without_lock(fn):
        def run():
            real = (storage_module.writer_lock, folder_module.writer_lock)
            storage_module.writer_lock = folder_module.writer_lock = lambda *a, **k: contextlib.nullcontext()
            try:
                fn()
            finally:
                storage_module.writer_lock, folder_module.writer_lock = real
        return run

    add_times: dict[str, list[float]] = {"with lock": [], "without lock": []}

    def timed_add(name):
        def run():
            t = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                assert main(["index", "add", str(folder), "--embeddings", str(tmp / "vectors.npy"),
                             "--corpus", str(corpus)]) == 0
            add_times[name].append(time.perf_counter() - t)
            with IndexFolder.update(folder) as state:
                state.remove(ids)
        return run

    with recording(RESULTS / "lock-cost.json", "index-lock-cost", sys.argv) as rec:
        lock_us = []
        for _ in range(args.lock_repeats):
            t = time.perf_counter()
            with writer_lock(folder):
                pass
            lock_us.append((time.perf_counter() - t) * 1e6)
        runs = interleaved({"with lock": timed_add("with lock"),
                            "without lock": without_lock(timed_add("without lock"))}, args.repeats)
        with_ms, without_ms = (median(add_times[k]) * 1e3 for k in ("with lock", "without lock"))
        rec.metrics.update({
            "lock_acquire_release_us_median": round(median(lock_us), 1),
            "lock_acquire_release_us_p99": round(sorted(lock_us)[int(0.99 * (len(lock_us) - 1))], 1),
            "add_ms_with_lock_median": round(with_ms, 2), "add_ms_without_lock_median": round(without_ms, 2),
            "add_lock_difference_ms": round(with_ms - without_ms, 2), "target_ms": 5.0,
            "index_documents": 1000, "added_documents": 20, "repeats": args.repeats})
        rec.details["load"] = describe_load([r for rs in runs.values() for r in rs])
        rec.details["add_ms"] = {k: [round(v * 1e3, 2) for v in vs] for k, vs in add_times.items()}
    print(json.dumps(rec.metrics))


def filesystem(path: Path) -> str:
    """The type of the filesystem ``path`` is on (flushes cost nothing on tmpfs, a lot on a network disk)."""
    mounts = [p for p in psutil.disk_partitions(all=True) if str(path).startswith(p.mountpoint)]
    return max(mounts, key=lambda p: len(p.mountpoint)).fstype if mounts else "unknown"


def run_save(args, tmp: Path) -> None:
    """What a crash-safe save costs over raw FAISS: the same Flat index written by ``faiss.write_index``
    (vectors only, overwritten in place, not flushed), by ``faiss.write_index`` to a temporary file that is
    flushed and renamed over the old one (the usual hand-made durable save), by ``FaissIndex.save`` (writer
    lock, vectors + ids and texts, SHA-256, flushes, manifest switch) and by ``IndexFolder.save`` (the same
    with the BM25 side). Interleaved, on the disk the repository is on (tmpfs would make flushes free)."""
    import faiss

    from embedkit.data import Document
    from embedkit.index import BM25Index, FaissIndex, IndexFolder

    def write_index(index, path: Path) -> None:
        faiss.write_index(index.faiss_index, str(path))

    def write_index_durable(index, path: Path) -> None:
        temp = path.with_name(path.name + ".tmp")
        faiss.write_index(index.faiss_index, str(temp))
        fd = os.open(temp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def save_both(folder, path: Path) -> None:
        folder.bm25.saved_section = None  # write the BM25 side too, as a save after a change does (an
        folder.save(path)                 # unchanged one is kept from the generation before)

    sizes = {}
    runs_all = []
    with recording(RESULTS / "save-cost.json", "index-save-cost", sys.argv) as rec:
        for n in args.sizes:
            rng = np.random.default_rng(n)
            ids = [f"d{i}" for i in range(n)]
            texts = [f"{workers.WORDS[i % 10]} {workers.WORDS[(i * 7) % 10]} common d{i}" for i in range(n)]
            index = FaissIndex(args.dim, "Flat")
            index.add(ids, rng.standard_normal((n, args.dim)).astype(np.float32), texts=texts)
            both = IndexFolder(index, BM25Index.from_documents([Document(i, "", t) for i, t in zip(ids, texts)]))
            work = Path(tempfile.mkdtemp(prefix=f"save-{n}-", dir=ROOT))
            try:
                (work / "raw").mkdir()
                candidates = {
                    "faiss.write_index": lambda: write_index(index, work / "raw" / "a.faiss"),
                    "faiss.write_index + fsync + rename": lambda: write_index_durable(index, work / "raw" / "b.faiss"),
                    "FaissIndex.save": lambda: index.save(work / "faiss-only"),
                    "IndexFolder.save (FAISS + BM25)": lambda: save_both(both, work / "both"),
                }
                for fn in candidates.values():  # warm up: first saves create the folders
                    fn()
                runs = interleaved(candidates, args.repeats)
                runs_all += [r for rs in runs.values() for r in rs]
                sizes[str(n)] = {name: round(median([r.seconds for r in rs]) * 1e3, 2) for name, rs in runs.items()}
                sizes[str(n)]["bytes_faiss"] = (work / "raw" / "a.faiss").stat().st_size
            finally:
                shutil.rmtree(work, ignore_errors=True)
        rec.metrics.update({"save_ms_median": sizes, "dim": args.dim, "spec": "Flat", "repeats": args.repeats,
                            "filesystem": filesystem(ROOT)})
        rec.details["load"] = describe_load(runs_all)
    print(json.dumps(rec.metrics))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="part", required=True)
    w = sub.add_parser("writers")
    w.add_argument("--writers", type=int, default=4)
    w.add_argument("--batches", type=int, default=25)
    w.add_argument("--readers", type=int, default=2)
    k = sub.add_parser("kill")
    k.add_argument("--rounds", type=int, default=200)
    k.add_argument("--seed", type=int, default=16)
    k.add_argument("--longest", type=float, default=0.4, help="longest delay before the kill, seconds")
    sub.add_parser("faults")
    f = sub.add_parser("fuzz")
    f.add_argument("--examples", type=int, default=2000, help="examples per loader")
    lk = sub.add_parser("lock")
    lk.add_argument("--repeats", type=int, default=30, help="`index add` runs with and without the lock, interleaved")
    lk.add_argument("--lock-repeats", type=int, default=2000)
    sv = sub.add_parser("save")
    sv.add_argument("--sizes", type=int, nargs="+", default=[1000, 20000], help="documents in the index")
    sv.add_argument("--dim", type=int, default=384)
    sv.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        parts = {"writers": run_writers, "kill": run_kill, "faults": run_faults, "fuzz": run_fuzz, "lock": run_lock,
                 "save": run_save}
        parts[args.part](args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
