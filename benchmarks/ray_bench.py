"""Distributed encoding on Ray against the single-process engine, on this machine.

``throughput``: the SciFact corpus (title and text, as ``encode --ray`` embeds a BEIR corpus) with the
default model, three ways in one run, interleaved (A B C A B C ...):

- ``single``: the single-process engine with 1 thread (``load_model`` + ``encode(workers=1, threads=1)``);
- ``ray-1x1``: ``encode_on_ray`` on a Ray cluster of 1 node with 1 CPU (one actor);
- ``ray-2x1``: ``encode_on_ray`` on a cluster of 2 nodes with 1 CPU each (two actors).

Each Ray run gets a fresh cluster (a head node, plus a second node for 2x1: separate raylets and object
stores, ``ray.cluster_utils.Cluster``), started before the clock and shut down after, as a standing
cluster would be; the timed call includes everything else (planning, joining, starting the actors and
loading the model in them, scheduling, writing the Parquet shards). Reported: texts/s (median), Ray's
overhead on one node (``ray-1x1`` vs ``single``) and the 2-node speed-up (``ray-2x1`` vs ``ray-1x1``).

``memory``: peak resident memory of the driver (``embedkit encode --ray`` in its own process) and of
each actor, for an input of ``--lines`` lines (real sentences repeated) with the tiny random model, on
the 2-node cluster; run it for 100k and 1M lines to see whether memory grows with the corpus.

CPU accounting: this process, the cluster and the driver are one process tree; a sampler reads every
process of that tree and the machine's busy time (every second for throughput, every 0.5 s for memory
peaks), so the CPU that other processes used during a run is the machine's minus the tree's (see
``benchlib`` for why it is recorded).

    flock /work/cpu.lock python benchmarks/ray_bench.py throughput --repeats 2 --record [--limit 1500]
    flock /work/cpu.lock python benchmarks/ray_bench.py memory --lines 1000000
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from benchlib import _busy_seconds, median  # noqa: E402

OBJECT_STORE = 300 * 1024 * 1024
# Throughput runs need only CPU seconds, which are cumulative, so the sampler looks once a second: reading
# every process of a cluster's tree five times a second took about 0.02 of a core, from the runs it timed.
CPU_INTERVAL = 1.0
RESULTS = ROOT / "results" / "distributed"


class TreeSampler:
    """Peak RSS and CPU seconds of every process in this process's tree, and the machine's busy time."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.cpu: dict[int, float] = {}
        self.peak: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        for process in [me] + me.children(recursive=True):
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    rss = process.memory_info().rss
                    name = " ".join(process.cmdline())[:120]
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            self.cpu[process.pid] = times.user + times.system
            self.peak[process.pid] = max(self.peak.get(process.pid, 0), rss)
            self.names[process.pid] = name

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "TreeSampler":
        self._sample()
        self.cpu0, self.busy0, self.t0 = dict(self.cpu), _busy_seconds(), time.perf_counter()
        self.load_before = os.getloadavg()[0]
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.seconds = time.perf_counter() - self.t0
        self.tree_cpu = sum(c - self.cpu0.get(pid, 0.0) for pid, c in self.cpu.items())
        self.others_cpu = max(0.0, (_busy_seconds() - self.busy0) - self.tree_cpu) / self.seconds
        self.load_after = os.getloadavg()[0]

    def measurement(self) -> dict:
        return {"seconds": round(self.seconds, 3), "tree_cpu_seconds": round(self.tree_cpu, 2),
                "others_cpu_cores": round(self.others_cpu, 3), "load_before": round(self.load_before, 2),
                "load_after": round(self.load_after, 2)}


def start_cluster(nodes: int):
    from ray.cluster_utils import Cluster

    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": OBJECT_STORE,
                                                            "include_dashboard": False})
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
    cluster.wait_for_nodes()
    return cluster


def scifact_texts(limit: int | None, corpus: Path | None = None) -> tuple[Path, list[str]]:
    """The corpus as ``encode --ray`` reads it (a BEIR JSONL file) and the texts it embeds, in order."""
    from embedkit.data import iter_documents
    from embedkit.data import full_text
    from embedkit.paths import data_dir

    corpus = corpus or data_dir() / "scifact" / "corpus.jsonl"
    if limit is not None:  # a prefix, for a quick check of the script itself
        short = Path(tempfile.mkdtemp(prefix="ray-bench-")) / "corpus.jsonl"
        short.write_text("".join(corpus.read_text(encoding="utf-8").splitlines(keepends=True)[:limit]),
                         encoding="utf-8")
        corpus = short
    return corpus, [full_text(d.title, d.text) for d in iter_documents(corpus)]


def run_single(corpus: Path) -> None:
    """The single-process engine in a fresh process (imports and model load included, as for the actors)."""
    subprocess.run([sys.executable, __file__, "single", str(corpus)], check=True)


def single(args) -> None:
    from embedkit.encoding import encode
    from embedkit.models import load_model

    texts = scifact_texts(None, Path(args.corpus))[1]
    encode(load_model("default", device="cpu"), texts, workers=1, threads=1, show_progress=False)


def run_ray(corpus: Path, nodes: int, work: Path) -> dict:
    from embedkit.distributed import encode_on_ray

    cluster = start_cluster(nodes)
    out = work / f"ray-{nodes}x1-{time.monotonic_ns()}"
    try:
        with TreeSampler(CPU_INTERVAL) as sampler:
            result = encode_on_ray(corpus, out, address=cluster.address, show_progress=False)
    finally:
        cluster.shutdown()
        shutil.rmtree(out, ignore_errors=True)
    assert result.resumed_parts == 0, "a benchmark run must start fresh"
    return {**sampler.measurement(), "actors": result.actors, "parts": result.parts}


def throughput(args) -> None:
    from embedkit.records import make_record, write_record

    corpus, texts = scifact_texts(args.limit)
    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    runs: dict[str, list[dict]] = {"single": [], "ray-1x1": [], "ray-2x1": []}
    started = time.perf_counter()
    for repeat in range(args.repeats):
        with TreeSampler(CPU_INTERVAL) as sampler:
            run_single(corpus)
        runs["single"].append(sampler.measurement())
        runs["ray-1x1"].append(run_ray(corpus, 1, work))
        runs["ray-2x1"].append(run_ray(corpus, 2, work))
        for name, values in runs.items():
            m = values[-1]
            print(f"[{repeat + 1}/{args.repeats}] {name}: {m['seconds']:.1f} s, {len(texts) / m['seconds']:.2f} "
                  f"texts/s, other processes {m['others_cpu_cores']:.2f} cores", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    seconds = {name: median([m["seconds"] for m in values]) for name, values in runs.items()}
    metrics = {f"{name}_texts_per_s": len(texts) / s for name, s in seconds.items()}
    metrics |= {"ray_overhead_one_node": seconds["ray-1x1"] / seconds["single"] - 1,
                "speedup_two_nodes": seconds["ray-1x1"] / seconds["ray-2x1"],
                "speedup_two_nodes_vs_single": seconds["single"] / seconds["ray-2x1"],
                "texts": len(texts), "others_cpu_cores_max": max(m["others_cpu_cores"] for v in runs.values()
                                                                 for m in v)}
    for name, value in metrics.items():
        print(f"{name}: {value:.4f}" if isinstance(value, float) else f"{name}: {value}")
    if args.record:
        part = f"the first {len(texts)} documents of" if args.limit is not None else "all of"
        write_record(RESULTS / "throughput.json", make_record(
            "distributed-throughput", metrics, [sys.executable] + sys.argv, time.perf_counter() - started,
            details={"runs": runs, "corpus": f"{part} SciFact corpus.jsonl (title + text)", "model": "default",
                     "batch_size": 32, "repeats": args.repeats,
                     "cluster": "ray.cluster_utils.Cluster on this machine, 1 CPU and a 300 MiB object store "
                                "per node, started before and shut down after each timed run"}))


def write_lines(path: Path, count: int) -> str:
    from bench_sentences import unique_sentences

    from embedkit.paths import data_dir

    sentences = unique_sentences(data_dir())
    with path.open("w", encoding="utf-8") as f:
        for i in range(count):
            f.write(sentences[i % len(sentences)].replace("\n", " ") + "\n")
    return f"{count} lines: {len(sentences)} distinct real sentences, repeated in order"


def memory(args) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import make_tiny_model_dir

    from embedkit.records import make_record, write_record

    work = Path(tempfile.mkdtemp(prefix="ray-bench-mem-"))
    model = make_tiny_model_dir(work / "tiny")
    source = work / "input.txt"
    described = write_lines(source, args.lines)
    cluster = start_cluster(2)
    out = work / "emb"
    command = [sys.executable, "-m", "embedkit.cli.main", "encode", "--ray", cluster.address, "--model", str(model),
               "--input", str(source), "--out", str(out)]
    try:
        with TreeSampler(interval=0.5) as sampler:
            driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            stdout, _ = driver.communicate()
        assert driver.returncode == 0, stdout
    finally:
        cluster.shutdown()
    actors = [pid for pid, name in sampler.names.items() if "PartEncoder" in name]
    metrics = {"lines": args.lines, "driver_peak_rss_mb": sampler.peak[driver.pid] / 2**20,
               "actor_peak_rss_mb": [sampler.peak[pid] / 2**20 for pid in actors],
               "seconds": sampler.seconds, "texts_per_s": args.lines / sampler.seconds,
               "others_cpu_cores": sampler.others_cpu}
    print(stdout.strip())
    for name, value in metrics.items():
        print(f"{name}: {value}")
    shutil.rmtree(work, ignore_errors=True)
    write_record(RESULTS / f"memory_{args.lines}.json", make_record(
        "distributed-memory", metrics, [sys.executable] + sys.argv, sampler.seconds,
        details={"input": described, "model": "tiny random BERT (tests/helpers.make_tiny_model_dir: 2 layers, "
                 "hidden 32)", "cluster": "2 nodes x 1 CPU, ray.cluster_utils.Cluster on this machine",
                 "driver": " ".join(command[1:4]) + " ...", **sampler.measurement()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--repeats", type=int, default=2)
    t.add_argument("--limit", type=int, default=None,
                   help="the first N documents only (a run that fits a shared machine; the record says so)")
    t.add_argument("--record", action="store_true", help="write results/distributed/throughput.json")
    m = sub.add_parser("memory")
    m.add_argument("--lines", type=int, default=1_000_000)
    s = sub.add_parser("single", help="(internal) the single-process run, in its own process")
    s.add_argument("corpus")
    args = parser.parse_args()
    {"throughput": throughput, "memory": memory, "single": single}[args.what](args)


if __name__ == "__main__":
    main()
