"""Tables of the service's load test (``benchmarks/serve_bench.py``): ``load.json`` and ``writes.json``.

- ``serve-load``: requests per second and latency for /search and /v1/embeddings at each number of
  clients, micro-batching on and off, with the CPU the server and the load generator took, beside the
  in-process ceiling;
- ``serve-ratio``: the server's throughput at the most clients as a share of the in-process ceiling, and
  the server's resident memory over the run;
- ``serve-peer``: the server beside txtai's API (the same model, documents and load) at each number of clients;
- ``serve-writes``: searches while upserts stream in, against the same searches without writes.
"""
from __future__ import annotations

from pathlib import Path

from embedkit.records import fmt, load_record

HERE = Path(__file__).resolve().parent
ENDPOINTS = (("search", "`POST /search` (dense, k=10)"), ("embeddings", "`POST /v1/embeddings` (1 text)"))


def _load() -> dict:
    return load_record(HERE / "load.json")


def _machine(record: dict) -> str:
    cpu = record["cpu"]
    return (f"{cpu.get('model', '?')}, {cpu.get('cores', '?')} cores; commit {record['commit'][:10]}; "
            f"{record['metrics']['seconds_per_run']} s per run")


def _by_clients(runs: dict) -> list:
    return sorted(runs.items(), key=lambda item: int(item[0]))


def load_table() -> str:
    record = _load()
    m = record["metrics"]
    lines = ["| endpoint | micro-batching | clients | requests/s | p50 ms | p95 ms | p99 ms | errors | "
             "server CPU (cores) | wrk CPU (cores) | other processes (cores) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, label in ENDPOINTS:
        lines.append(f"| {label} | in-process ceiling (batches of 32) | – | {fmt(m[f'{key}_in_process_per_s'], 1)} "
                     "| – | – | – | – | – | – | – |")
        for mode in ("on", "off"):
            for clients, run in _by_clients(m[f"{key}_{mode}"]):
                lines.append(f"| {label} | {mode} | {clients} | {fmt(run['qps'], 1)} | {fmt(run['p50_us'] / 1000, 1)} | "
                             f"{fmt(run['p95_us'] / 1000, 1)} | {fmt(run['p99_us'] / 1000, 1)} | {run['errors']} | "
                             f"{fmt(run['server_cpu_cores'])} | {fmt(run['wrk_cpu_cores'])} | "
                             f"{fmt(run['others_cpu_cores'])} |")
    lines.append(f"\n{m['docs']:,} SciFact abstracts; {_machine(record)}.")
    return "\n".join(lines)


def ratio_table() -> str:
    record = _load()
    m = record["metrics"]
    top = max(m["clients"])
    lines = [f"| endpoint | in-process, texts/s | server at {top} clients, on | share | server at {top} clients, off "
             "| share |", "|---|---|---|---|---|---|"]
    for key, label in ENDPOINTS:
        lines.append(f"| {label} | {fmt(m[f'{key}_in_process_per_s'], 1)} | {fmt(m[f'{key}_on'][str(top)]['qps'], 1)} "
                     f"| **{fmt(100 * m[f'{key}_ratio_on_at_{top}'], 0)}%** | {fmt(m[f'{key}_off'][str(top)]['qps'], 1)} "
                     f"| {fmt(100 * m[f'{key}_ratio_off_at_{top}'], 0)}% |")
    rss = {mode: m[f"rss_mib_{mode}"] for mode in ("on", "off")}
    lines.append(f"\nServer resident memory, sampled every second (MiB): micro-batching on "
                 f"{fmt(min(rss['on']), 0)}-{fmt(max(rss['on']), 0)}, its range after the first quarter of the run "
                 f"{fmt(m['rss_growth_mib_on'], 1)}; off {fmt(min(rss['off']), 0)}-{fmt(max(rss['off']), 0)} "
                 f"({fmt(m['rss_growth_mib_off'], 1)}). In-process ceiling: the higher of two measurements, before "
                 "and after the server runs.")
    return "\n".join(lines)


def peer_table() -> str:
    record = _load()
    m = record["metrics"]
    peer = m["txtai"]
    lines = [f"| endpoint | clients | embedkit serve (micro-batching on): requests/s | p50 ms | p99 ms | errors "
             f"| other processes (cores) | txtai {peer['version']} API: requests/s | p50 ms | p99 ms | errors "
             "| other processes (cores) | embedkit / txtai |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    labels = {"search": "search (dense, k=10)", "embeddings": "embeddings (1 text)"}
    for key in ("search", "embeddings"):
        for clients, ours in _by_clients(m[f"{key}_on"]):
            theirs = peer[key][clients]
            lines.append(f"| {labels[key]} | {clients} | {fmt(ours['qps'], 1)} | {fmt(ours['p50_us'] / 1000, 1)} | "
                         f"{fmt(ours['p99_us'] / 1000, 1)} | {ours['errors']} | {fmt(ours['others_cpu_cores'])} | "
                         f"{fmt(theirs['qps'], 1)} | {fmt(theirs['p50_us'] / 1000, 1)} | {fmt(theirs['p99_us'] / 1000, 1)} "
                         f"| {theirs['errors']} | {fmt(theirs['others_cpu_cores'])} | {fmt(ours['qps'] / theirs['qps'], 2)}x |")
    rss = peer["rss_mib"]
    lines.append(f"\ntxtai: `uvicorn txtai.api:app` (one worker, its defaults), FAISS `IDMap,Flat`, texts stored, "
                 f"`GET /search?query=..&limit=10` and `GET /transform?text=..`; resident memory "
                 f"{fmt(min(rss), 0)}-{fmt(max(rss), 0)} MiB. {_machine(record)}.")
    return "\n".join(lines)


def writes_table() -> str:
    record = load_record(HERE / "writes.json")
    m = record["metrics"]
    during, without = m["search"], m["search_without_writes"]
    lines = ["| searches (8 clients, dense, k=10) | requests/s | p50 ms | p95 ms | p99 ms | errors | other processes (cores) |",
             "|---|---|---|---|---|---|---|"]
    for label, run in (("without writes", without), ("during the upsert stream", during)):
        lines.append(f"| {label} | {fmt(run['qps'], 1)} | {fmt(run['p50_us'] / 1000, 1)} | {fmt(run['p95_us'] / 1000, 1)} "
                     f"| {fmt(run['p99_us'] / 1000, 1)} | {run['errors']} | {fmt(run['others_cpu_cores'])} |")
    lines.append(f"\nUpserts (4 SciFact abstracts each, one writer, back to back): {m['upserts_acknowledged']} acknowledged "
                 f"({m['documents_added']} documents added), latency p50 {fmt(m['upsert_ms_p50'], 0)} ms"
                 + (f", p95 {fmt(m['upsert_ms_p95'], 0)} ms" if m.get("upsert_ms_p95") is not None else "")
                 + f". Partial or failed results in {m['batch_checks']} BM25 checks of acknowledged batches: "
                 f"**{m['partial_or_failed']}**; acknowledged batches missing at the end: "
                 f"**{m['acknowledged_missing_after']}**. The server saved a checkpoint (a new generation of the "
                 "folder, under its writer lock) every second of writing, its default.")
    return "\n".join(lines)


def memory_table() -> str:
    record = load_record(HERE / "memory.json")
    m = record["metrics"]
    lines = ["| round | /search at 32 clients, requests/s | RSS after (MiB) | /v1/embeddings at 32 clients, "
             "requests/s | RSS after (MiB) |", "|---|---|---|---|---|"]
    for r in m["rounds"]:
        lines.append(f"| {r['round']} | {fmt(r['search_qps'], 1)} | {fmt(r['rss_mib_after_search'], 0)} | "
                     f"{fmt(r['embeddings_qps'], 1)} | {fmt(r['rss_mib_after_embeddings'], 0)} |")
    low, high = m["rss_mib_range_after_round_1"]
    ends = [r["rss_mib_after_embeddings"] for r in m["rounds"]]
    trend = "rising every round" if all(a < b for a, b in zip(ends, ends[1:])) else "not rising round on round"
    lines += ["", f"{m['docs']} SciFact abstracts, micro-batching on, {m['seconds_per_load_run']} s per load run, one "
              f"server throughout. Resident memory at the end of rounds 2-4: {fmt(low, 0)}-"
              f"{fmt(high, 0)} MiB, {trend} (sampled every second: {fmt(min(m['rss_mib_samples']), 0)}-"
              f"{fmt(max(m['rss_mib_samples']), 0)} over the whole run). {record['cpu'].get('model', '?')}, "
              f"{record['cpu'].get('cores', '?')} cores; commit {record['commit'][:10]}; record "
              "`results/serve/memory.json`."]
    return "\n".join(lines)


TABLES = {"serve-memory": memory_table, "serve-load": load_table, "serve-ratio": ratio_table, "serve-peer": peer_table, "serve-writes": writes_table}
