"""Tables of the distributed-encoding records (``benchmarks/ray_bench.py``).

- ``distributed-throughput`` (``throughput.json``): SciFact with the default model, the single-process
  engine with 1 thread against Ray on 1 node x 1 CPU and 2 nodes x 1 CPU, in one run; texts/s, Ray's
  overhead on one node and the 2-node speed-up, with the CPU other processes took.
- ``distributed-memory`` (``memory_<lines>.json``): peak resident memory of the driver and of each actor
  per input size, with the tiny model.
"""
from __future__ import annotations

from pathlib import Path

from embedkit.records import fmt, load_record

HERE = Path(__file__).resolve().parent
CONFIGS = (("single", "single-process engine, 1 thread"), ("ray-1x1", "Ray, 1 node x 1 CPU (1 actor)"),
           ("ray-2x1", "Ray, 2 nodes x 1 CPU (2 actors)"))


def throughput() -> str:
    record = load_record(HERE / "throughput.json")
    m, runs = record["metrics"], record["details"]["runs"]
    cpu = record["cpu"].get("model", "?")
    corpus = record["details"]["corpus"]
    repeats = record["details"]["repeats"]
    timing = f"median of {repeats} interleaved runs" if repeats > 1 else "one run"
    lines = [f"{corpus[0].upper() + corpus[1:]}, default model, batch 32; {cpu}; {timing}; "
             "record `results/distributed/throughput.json`.",
             "", "| configuration | texts/s | seconds (runs) | other processes' CPU (cores, max) |",
             "|---|---:|---|---:|"]
    for key, label in CONFIGS:
        seconds = ", ".join(fmt(r["seconds"], 1) for r in runs[key])
        others = max(r["others_cpu_cores"] for r in runs[key])
        lines.append(f"| {label} | {fmt(m[f'{key}_texts_per_s'])} | {seconds} | {fmt(others)} |")
    overhead, speedup = m["ray_overhead_one_node"], m["speedup_two_nodes"]
    lines += ["", f"Ray's overhead on one node: **{fmt(100 * overhead, 1)}%** (target <= 10%: "
              f"{'met' if overhead <= 0.10 else 'missed'}). Two-node speed-up over one node: **{fmt(speedup)}x** "
              f"(target >= 1.8x: {'met' if speedup >= 1.8 else 'missed'}); over the single process: "
              f"{fmt(m['speedup_two_nodes_vs_single'])}x."]
    return "\n".join(lines)


def memory() -> str:
    records = sorted((load_record(p) for p in HERE.glob("memory_*.json")), key=lambda r: r["metrics"]["lines"])
    lines = ["| input lines | driver peak RSS (MiB) | actors' peak RSS (MiB) | texts/s | other processes' CPU "
             "(cores) | record |", "|---:|---:|---|---:|---:|---|"]
    for r in records:
        m = r["metrics"]
        actors = ", ".join(fmt(a, 0) for a in m["actor_peak_rss_mb"])
        lines.append(f"| {m['lines']:,} | {fmt(m['driver_peak_rss_mb'], 0)} | {actors} | {fmt(m['texts_per_s'], 0)} | "
                     f"{fmt(m['others_cpu_cores'])} | `results/distributed/memory_{m['lines']}.json` |")
    return "\n".join(lines)


TABLES = {"distributed-throughput": throughput, "distributed-memory": memory}
