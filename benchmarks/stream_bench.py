"""Streaming encode: peak resident memory on a large input, and resume after a crash == uninterrupted run.

The input file has ``--texts`` lines: the ~100k distinct real sentences of the shared data folder
(``bench_sentences.unique_sentences``), repeated in order as often as needed to reach the count (said
in the output when it happens). Each run is ``embedkit encode --stream`` in its own process; its peak
resident memory is the child's ``ru_maxrss`` from ``wait4``.

1. an uninterrupted run -> ``full.npy``;
2. a run killed with SIGKILL once ``--kill-after`` windows are done, then the same command again,
   which resumes -> ``resumed.npy``; the two files must be byte-identical (sha256 printed);
3. with ``--compare-st``: sentence-transformers' way in one process (read all lines, ``model.encode``,
   ``np.save``), for its peak memory on the same input.

The limit checked is peak RSS < 1.5 GB + the output file's size.

    python benchmarks/stream_bench.py --texts 100000                      # default model
    python benchmarks/stream_bench.py --texts 1000000 --tiny --compare-st  # tiny random model
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from benchlib import machine  # noqa: E402

LIMIT = 1.5e9


def write_input(path: Path, count: int) -> str:
    from bench_sentences import unique_sentences

    from embedkit.paths import data_dir

    sentences = unique_sentences(data_dir())
    with path.open("w", encoding="utf-8") as f:
        for i in range(count):
            f.write(sentences[i % len(sentences)].replace("\n", " ") + "\n")
    repeats = count / len(sentences)
    return (f"{count} lines from {len(sentences)} distinct real sentences"
            + (f", repeated {repeats:.1f} times" if repeats > 1 else ""))


def run_child(command: list[str], kill_when=None) -> dict:
    """Run ``command``; return wall seconds, peak RSS (bytes) and whether it was killed."""
    t0 = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    killed = False
    if kill_when is not None:
        while process.poll() is None:
            if kill_when():
                os.kill(process.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.2)
    _, status, usage = os.wait4(process.pid, 0)
    output = process.stdout.read().strip()
    return {"seconds": time.perf_counter() - t0, "peak_rss": usage.ru_maxrss * 1024, "killed": killed,
            "exit": os.waitstatus_to_exitcode(status), "output": output}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def resume_check(base: list[str], work: Path, kill_after: int) -> dict:
    """Kill a run with SIGKILL once ``kill_after`` windows are done, rerun it; compare with full.npy."""
    state = work / "resumed.npy.partial.json"

    def windows_done() -> bool:
        try:
            return json.loads(state.read_text())["done"] >= kill_after
        except (OSError, ValueError, KeyError):
            return False

    crashed = run_child(base + ["--out", str(work / "resumed.npy")], kill_when=windows_done)
    resumed = run_child(base + ["--out", str(work / "resumed.npy")])
    same = sha256(work / "full.npy") == sha256(work / "resumed.npy")
    print(f"killed after {kill_after} windows: {crashed['killed']}; resume: {resumed['output']!r}; "
          f"resumed file identical to uninterrupted: {same} (sha256 {sha256(work / 'full.npy')[:16]}); resume peak RSS "
          f"{resumed['peak_rss'] / 1e9:.3f} GB", flush=True)
    return {"crashed": crashed, "resumed": resumed, "identical": same}


ST_CHILD = """
import sys, numpy as np
from embedkit.data import read_lines
from embedkit.models import load_model
model = load_model(sys.argv[1], device="cpu")
texts = read_lines(sys.argv[2])
np.save(sys.argv[3], np.asarray(model.encode(texts, batch_size=int(sys.argv[4])), dtype=np.float32))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=100_000)
    parser.add_argument("--model", default="default")
    parser.add_argument("--tiny", action="store_true", help="a randomly initialised tiny BERT (hidden 32, 2 layers)")
    parser.add_argument("--window", type=int, default=16384)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--kill-after", type=int, default=2, help="windows done before the SIGKILL")
    parser.add_argument("--compare-st", action="store_true")
    parser.add_argument("--no-resume-check", action="store_true",
                        help="only the uninterrupted run (peak memory), not the kill-and-resume pass")
    parser.add_argument("--workdir", default=None, help="where the input and outputs go (default: a temp dir)")
    parser.add_argument("--out", default=None, help="append the record as a JSON line to this file")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    work = Path(args.workdir or tempfile.mkdtemp(prefix="embedkit-stream-"))
    work.mkdir(parents=True, exist_ok=True)
    model = args.model
    if args.tiny:
        sys.path.insert(0, str(HERE.parent / "tests"))
        from helpers import make_tiny_model_dir

        model = str(make_tiny_model_dir(work / "tiny"))
    source = work / "input.txt"
    described = write_input(source, args.texts)
    print(f"machine {machine()}\ninput: {described} ({source.stat().st_size / 1e6:.1f} MB); model {model}", flush=True)

    base = [sys.executable, "-m", "embedkit.cli.main", "encode", "--model", model, "--input", str(source), "--stream",
            "--window", str(args.window), "--batch-size", str(args.batch_size), "--backend", args.backend]
    full = run_child(base + ["--out", str(work / "full.npy")])
    size = (work / "full.npy").stat().st_size
    print(f"uninterrupted: {full['seconds']:.0f} s, {args.texts / full['seconds']:.0f} texts/s, peak RSS "
          f"{full['peak_rss'] / 1e9:.3f} GB, output {size / 1e9:.3f} GB, limit {(LIMIT + size) / 1e9:.3f} GB: "
          f"{'OK' if full['peak_rss'] < LIMIT + size else 'OVER'}", flush=True)

    record = {"benchmark": "stream", "argv": sys.argv[1:], "input": described, "full": full, "output_bytes": size,
              "limit_bytes": LIMIT + size}
    if not args.no_resume_check:
        record.update(resume_check(base, work, args.kill_after))
    if args.compare_st:
        st = run_child([sys.executable, "-c", ST_CHILD, model, str(source), str(work / "st.npy"), str(args.batch_size)])
        print(f"sentence-transformers (read all, encode, save): {st['seconds']:.0f} s, peak RSS "
              f"{st['peak_rss'] / 1e9:.3f} GB (exit {st['exit']}); embedkit streaming peak / ST peak = "
              f"{full['peak_rss'] / st['peak_rss']:.2f}", flush=True)
        record["sentence_transformers"] = st
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
