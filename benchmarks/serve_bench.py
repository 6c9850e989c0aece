"""Load test of ``embedkit serve`` on 127.0.0.1, against the in-process library in the same run.

What it measures, on an index of SciFact abstracts (default model, Flat, with BM25):

1. in-process ceilings: ``encode`` of batches of 32 texts, one batch per core at a time (as the
   server's encode workers run) + ``FaissIndex.search`` of the batch (search), and ``encode`` of batches
   of 32 short texts (embeddings), in texts per second; measured before and after the server runs, and
   the higher of the two is the ratio's denominator;
2. the server with micro-batching on (``--max-batch 32 --max-wait-ms 2``) and off (``--max-batch 1``):
   for ``POST /search`` (a SciFact query, dense, k=10) and ``POST /v1/embeddings`` (one STS-B sentence per
   request), 1, 8 and 32 concurrent clients for ``--seconds`` each: requests per second, p50/p95/p99
   latency, errors; the CPU the server and the load generator took; the server's resident memory
   every second;
3. the strongest peer the issue names that runs here, txtai's API (FastAPI + uvicorn over a txtai
   index: the same model, the same documents, FAISS ``IDMap,Flat``), at its defaults, under the same
   load: ``GET /search?query=...&limit=10`` and ``GET /transform?text=...`` (one text). (The other
   anchors, text-embeddings-inference and infinity, do not run here: TEI is a Rust binary shipped as a
   container image, and infinity-emb's server extra cannot be installed beside this environment's
   pinned packages; see docs/serve.md.)
4. searches during a stream of upserts (micro-batching on): 8 clients search while a writer upserts
   batches of 4 documents as fast as it is acknowledged and a checker searches BM25 for each batch's
   tag (a batch must show all 4 documents or none): search latency while writing, upsert latency,
   errors, partial results. The server checkpoints (saves a generation) every second of writing.

The load generator is wrk (C, one thread, a Lua script that rotates request bodies), a process of its
own; it shares the machine's cores with the server, and its CPU time is reported beside the server's.
Records: results/serve/load.json, results/serve/writes.json and, with ``--soak``,
results/serve/memory.json (tables: results/serve/tables.py).

    python benchmarks/serve_bench.py --docs 500                        # the recorded run, about 16 minutes
    python benchmarks/serve_bench.py --docs 500 --soak 4 --seconds 20  # memory over identical rounds
    python benchmarks/serve_bench.py --seconds 5 --clients 1,8 --docs 500 --no-record   # a quick look
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from benchlib import _busy_seconds  # noqa: E402

TOKEN = "serve-bench-token-0123456789"
LUA = r"""
local bodies, i = {}, 0
init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
end
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", wrk.path, {["Content-Type"] = "application/json"}, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\n{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean, latency.max))
end
"""
LUA_GET = r"""
local paths, i = {}, 0
init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
end
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
""" + LUA[LUA.index("done = function"):]


# ---------------------------------------------------------------------------------------------- data


def scifact(root: Path, limit: int | None):
    from embedkit.data import load_beir

    beir = load_beir(root / "scifact", split="test")
    docs = list(beir.corpus.values())[:limit]
    with open(root / "scifact" / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for line in f]
    return docs, queries


def short_texts(root: Path) -> list[str]:
    rows = [line.split("\t") for line in (root / "stsb" / "sts-test.csv").read_text(encoding="utf-8").splitlines()]
    return [r[5] for r in rows]


def build_index(folder: Path, docs) -> None:
    """Flat cosine index + BM25 over ``docs``, vectors through the embedding cache (a rerun reads them)."""
    from embedkit.encoding import cached_encode
    from embedkit.index import BM25Index, IndexFolder, build_from_vectors
    from embedkit.data import full_text
    from embedkit.models import load_model, model_fingerprint, model_name

    model = load_model("default")
    vectors = cached_encode(model, [full_text(d.title, d.text) for d in docs], role="document", show_progress=True)
    index = build_from_vectors([d.id for d in docs], vectors, texts=[d.text for d in docs],
                               titles=[d.title for d in docs], model_name=model_name(model),
                               model_fingerprint=model_fingerprint(model), model_source="default",
                               show_progress=False)
    index.build_params.update(max_seq_length=model.max_seq_length, chunk_tokens=None, document_prompt=None)
    if folder.exists():
        shutil.rmtree(folder)
    IndexFolder(index, BM25Index.from_documents(docs)).save(folder)


def build_txtai(folder: Path, docs) -> None:
    """The same documents in a txtai index (same model, exact FAISS search, texts stored for the hits)."""
    from txtai import Embeddings

    from embedkit.data import full_text
    from embedkit.models import default_model_path

    if folder.exists():
        shutil.rmtree(folder)
    embeddings = Embeddings(path=str(default_model_path()), content=True, backend="faiss",
                            faiss={"components": "IDMap,Flat"})
    embeddings.index((d.id, full_text(d.title, d.text), None) for d in docs)
    embeddings.save(str(folder))


def txtai_peer(folder: Path, work: Path) -> tuple[list[str], dict, int]:
    """Command, environment and port of txtai's API serving ``folder`` (one uvicorn worker, its default)."""
    import socket

    from embedkit.models import default_model_path

    config = work / "txtai.yml"
    config.write_text(f"path: {folder}\nwritable: false\nembeddings:\n  path: {default_model_path()}\n"
                      "  content: true\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return ([sys.executable, "-m", "uvicorn", "txtai.api:app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"], {"CONFIG": str(config)}, port)


# ---------------------------------------------------------------------------------------------- in-process


def in_process(folder: Path, queries: list[str], texts: list[str], seconds: float) -> dict:
    """Texts per second of batched encode + search, and of batched encode alone: batches of 32 in input
    order, one per core at a time (a thread per usable CPU, each encoding its own batch with one torch
    thread, the plan the server's encode workers follow). Batches are not sorted by length across one
    another: the server's micro-batches hold whatever arrived, and one ``encode`` call over many batches
    would sort its texts by length first and pad less (1.7x the search throughput in a trial run)."""
    from concurrent.futures import ThreadPoolExecutor

    from embedkit.encoding import encode
    from embedkit.encoding.threads import usable_cpus
    from embedkit.index import FaissIndex
    from embedkit.models import load_model

    index = FaissIndex.load(folder)
    model = load_model("default")
    cores = usable_cpus()
    models = [model] + [copy.deepcopy(model) for _ in range(cores - 1)]  # as the server: a tokenizer each

    def embed(worker: int, batch: list[str], role=None):
        return encode(models[worker], batch, role=role, batch_size=32, workers=1, threads=1, show_progress=False)

    def search(worker: int, batch: list[str]):
        for row in index.search(embed(worker, batch, role="query"), 10, by_parent=True):
            [h.as_dict() for h in row]  # what the server does with each hit

    for worker in range(cores):
        embed(worker, texts[:32])  # warm-up
    out = {}
    with ThreadPoolExecutor(cores) as pool:
        for name, items, work in (("search", queries, search), ("embeddings", texts, embed)):
            done, start, cpu0 = 0, time.perf_counter(), time.process_time()
            while time.perf_counter() - start < seconds:
                batches = [(items + items)[(done + 32 * w) % len(items):][:32] for w in range(cores)]
                list(pool.map(work, range(cores), batches))
                done += sum(len(b) for b in batches)
            wall = time.perf_counter() - start
            out[name] = {"texts_per_s": done / wall, "cpu_cores": (time.process_time() - cpu0) / wall,
                         "threads": cores}
    return out


# ---------------------------------------------------------------------------------------------- server


class Server:
    """A server process on 127.0.0.1 (``embedkit serve``, or a peer given its command and port), its
    resident memory sampled every second."""

    def __init__(self, folder: Path, extra: list[str], log: Path, peer: tuple[list[str], dict, int] | None = None):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
        if peer is None:
            token = log.parent / "token"
            token.write_text(TOKEN + "\n")
            command, ready = [sys.executable, "-m", "embedkit.cli.main", "serve", f"scifact={folder}", "--port", "0",
                              "--token-file", str(token), *extra], "/health"
        else:
            command, peer_env, port = peer
            env.update(peer_env)
            ready, self.base = "/count", f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=open(log, "wb"), env=env, cwd=ROOT)
        if peer is None:
            for line in self.proc.stdout:
                if b"listening on" in line:
                    self.base = line.split(b"listening on ")[1].split()[0].decode()
                    break
            else:
                raise SystemExit(f"the server did not start; see {log}")
        import httpx

        self.http = httpx.Client(base_url=self.base, timeout=120)
        while True:
            try:
                if self.http.get(ready).status_code == 200:
                    break
            except httpx.TransportError:
                if self.proc.poll() is not None:
                    raise SystemExit(f"the server did not start; see {log}") from None
                time.sleep(0.1)
        self.ps = psutil.Process(self.proc.pid)
        self.rss: list[tuple[float, float, str]] = []  # (time, MiB, phase)
        self.phase = "start"
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            self.rss.append((time.time(), self.ps.memory_info().rss / 2**20, self.phase))

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def stop(self) -> None:
        self._stop.set()
        self.http.close()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)


def wrk(url: str, bodies: Path, clients: int, seconds: float, script: Path) -> dict:
    """One wrk run; returns its summary plus the CPU wrk used (cores)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(["wrk", "-t1", f"-c{clients}", f"-d{round(seconds)}s", "--timeout", "30s", "-s", str(script),
                             url, "--", str(bodies)], capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads([line for line in result.stdout.splitlines() if line.startswith("{")][-1])
    seconds_run = summary["duration_us"] / 1e6
    summary["qps"] = summary["requests"] / seconds_run
    summary["errors"] = sum(summary[k] for k in ("connect", "read", "write", "status", "timeout"))
    summary["wrk_cpu_cores"] = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) / seconds_run
    return summary


def load_run(server: Server, endpoint: str, bodies: Path, clients: int, seconds: float, script: Path) -> dict:
    """``endpoint``: the path posted to, or ``"/"`` with a GET script whose lines are the paths."""
    server.phase = f"{endpoint}@{clients}"
    busy0, cpu0, own0 = _busy_seconds(), server.cpu(), time.process_time()
    rss0 = server.ps.memory_info().rss / 2**20
    run = wrk(server.base + endpoint, bodies, clients, seconds, script)
    wall = run["duration_us"] / 1e6
    run["server_cpu_cores"] = (server.cpu() - cpu0) / wall
    own = time.process_time() - own0
    run["others_cpu_cores"] = max(0.0, (_busy_seconds() - busy0) - (server.cpu() - cpu0) - own
                                  - run["wrk_cpu_cores"] * wall) / wall
    run["rss_mib_start"], run["rss_mib_end"] = rss0, server.ps.memory_info().rss / 2**20
    print(f"  {endpoint} x{clients}: {run['qps']:.1f} req/s, p50 {run['p50_us'] / 1000:.1f} ms, "
          f"p99 {run['p99_us'] / 1000:.1f} ms, errors {run['errors']}, server {run['server_cpu_cores']:.2f} cores, "
          f"wrk {run['wrk_cpu_cores']:.2f}, others {run['others_cpu_cores']:.2f}, RSS {run['rss_mib_end']:.0f} MiB",
          flush=True)
    return run


# ---------------------------------------------------------------------------------------------- writes


def writes_phase(server: Server, bodies: Path, script: Path, seconds: float, corpus_texts: list[str]) -> dict:
    """8 searching clients (wrk) while a writer streams upserts and a checker watches for partial batches."""
    import httpx

    acked: list[str] = []
    upsert_ms: list[float] = []
    problems: list[str] = []
    checks = {"n": 0}
    stop = threading.Event()

    def write() -> None:
        with httpx.Client(base_url=server.base, timeout=120) as client:
            n = 0
            while not stop.is_set():
                tag = f"benchtag{n}"
                docs = [{"id": f"bench-{n}-{j}", "title": "", "text": f"{corpus_texts[(4 * n + j) % len(corpus_texts)]} {tag}"}
                        for j in range(4)]
                t0 = time.perf_counter()
                r = client.post("/documents", json={"documents": docs}, headers={"Authorization": f"Bearer {TOKEN}"})
                if r.status_code != 200:
                    problems.append(f"upsert {n}: {r.status_code} {r.text[:200]}")
                else:
                    upsert_ms.append((time.perf_counter() - t0) * 1000)
                    acked.append(tag)
                n += 1

    def check() -> None:
        rng = random.Random(0)
        with httpx.Client(base_url=server.base, timeout=120) as client:
            while not stop.is_set():
                if not acked:
                    time.sleep(0.05)
                    continue
                tag = rng.choice(acked[-20:])
                r = client.post("/search", json={"query": tag, "mode": "bm25", "k": 10})
                if r.status_code != 200:
                    problems.append(f"check search: {r.status_code}")
                    continue
                hits = r.json()["hits"]
                if len(hits) != 4 or any(h["text"] is None or tag not in h["text"] for h in hits):
                    problems.append(f"{tag}: {len(hits)} hits of an acknowledged batch of 4")
                checks["n"] += 1
                time.sleep(0.05)

    server.phase = "search+upserts"
    rows0 = server.http.get("/health").json()["indexes"]["scifact"]["rows"]
    threads = [threading.Thread(target=write), threading.Thread(target=check)]
    own0 = time.process_time()
    for t in threads:
        t.start()
    run = load_run(server, "/search", bodies, 8, seconds, script)
    stop.set()
    for t in threads:
        t.join()
    rows1 = server.http.get("/health").json()["indexes"]["scifact"]["rows"]
    missing = [tag for tag in acked if len(server.http.post("/search", json={"query": tag, "mode": "bm25",
                                                                            "k": 10}).json()["hits"]) != 4]
    return {"search": run, "upserts_acknowledged": len(acked), "documents_added": rows1 - rows0,
            "upsert_ms_p50": statistics.median(upsert_ms) if upsert_ms else None,
            "upsert_ms_p95": statistics.quantiles(upsert_ms, n=20)[-1] if len(upsert_ms) >= 20 else None,
            "partial_or_failed": len(problems), "problems": problems[:10], "batch_checks": checks["n"],
            "acknowledged_missing_after": len(missing), "driver_cpu_cores": (time.process_time() - own0) / seconds}


# ---------------------------------------------------------------------------------------------- soak


def soak(server: Server, bodies: dict, script: Path, rounds: int, seconds: float) -> dict:
    """The heaviest load, the same each round (32 clients on /search, then on /v1/embeddings), and the
    server's resident memory at the end of each round: memory that follows the load settles in the first
    round and stays; memory that creeps grows from round to round."""
    out = []
    for number in range(1, rounds + 1):
        row = {"round": number}
        for key, endpoint in ENDPOINT_OF:
            server.phase = f"soak {number} {endpoint}"
            row[f"{key}_qps"] = wrk(server.base + endpoint, bodies[endpoint], 32, seconds, script)["qps"]
            row[f"rss_mib_after_{key}"] = round(server.ps.memory_info().rss / 2**20, 1)
        print(f"  round {number}: {row}", flush=True)
        out.append(row)
    after = [r["rss_mib_after_embeddings"] for r in out]
    return {"rounds": out, "seconds_per_load_run": seconds, "rss_mib_samples": [round(m, 1) for _, m, _ in server.rss],
            "rss_growth_mib_after_round_1": max(after[1:]) - after[0] if len(after) > 1 else None,
            "rss_mib_range_after_round_1": [min(after[1:]), max(after[1:])] if len(after) > 1 else None}


# ---------------------------------------------------------------------------------------------- main

ENDPOINT_OF = (("search", "/search"), ("embeddings", "/v1/embeddings"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=None, help="SciFact abstracts to index (default: all 5,183)")
    p.add_argument("--no-peer", action="store_true", help="skip txtai's API")
    p.add_argument("--seconds", type=int, default=30, help="length of each load run (default 30)")
    p.add_argument("--clients", default="1,8,32", help="concurrent clients, comma list (default 1,8,32)")
    p.add_argument("--inprocess-seconds", type=float, default=20, help="length of each in-process run (default 20)")
    p.add_argument("--workdir", default="/tmp/embedkit-serve-bench", help="index folder and logs (not in the repo)")
    p.add_argument("--out", default=str(ROOT / "results" / "serve"), help="records folder")
    p.add_argument("--no-record", action="store_true", help="print only")
    p.add_argument("--soak", type=int, default=0, metavar="ROUNDS",
                   help="instead: ROUNDS identical rounds of the heaviest load (32 clients, each endpoint, "
                        "--seconds each) against one server with micro-batching on, resident memory after each "
                        "(record results/serve/memory.json)")
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("serve_bench needs wrk (Debian: apt-get install -y wrk)")
    from embedkit.paths import data_dir
    from embedkit.records import make_record, write_record

    started = time.perf_counter()
    clients = [int(c) for c in args.clients.split(",")]
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    docs, queries = scifact(data_dir(), args.docs)
    texts = short_texts(data_dir())
    folder = work / "index"
    print(f"index: {len(docs)} SciFact abstracts -> {folder}", flush=True)
    build_index(folder, docs)
    script = work / "bodies.lua"
    script.write_text(LUA)
    bodies = {"/search": work / "search.jsonl", "/v1/embeddings": work / "embeddings.jsonl"}
    bodies["/search"].write_text("".join(json.dumps({"query": q, "k": 10, "mode": "dense"}) + "\n" for q in queries))
    bodies["/v1/embeddings"].write_text("".join(json.dumps({"model": "scifact", "input": t}) + "\n" for t in texts))

    if args.soak:
        server = Server(folder, ["--max-batch", "32", "--max-wait-ms", "2"], work / "server-soak.log")
        try:
            wrk(server.base + "/search", bodies["/search"], 8, 3, script)  # warm-up
            result = soak(server, bodies, script, args.soak, args.seconds)
        finally:
            server.stop()
        result["docs"] = len(docs)
        print(json.dumps({k: v for k, v in result.items() if k.startswith("rss_growth") or k.startswith("rss_mib_range")}))
        if not args.no_record:
            command = ["python", "benchmarks/serve_bench.py", *(argv if argv is not None else sys.argv[1:])]
            write_record(Path(args.out) / "memory.json", make_record("serve-memory", result, command,
                                                                   time.perf_counter() - started))
        return 0
    print("in-process (before)", flush=True)
    ceilings = [in_process(folder, queries, texts, args.inprocess_seconds)]
    print(f"  {ceilings[0]}", flush=True)
    results: dict = {"on": {}, "off": {}}
    writes = None
    for mode, extra in (("on", ["--max-batch", "32", "--max-wait-ms", "2"]), ("off", ["--max-batch", "1"])):
        print(f"server, micro-batching {mode}", flush=True)
        server = Server(folder, extra, work / f"server-{mode}.log")
        try:
            wrk(server.base + "/search", bodies["/search"], 8, 3, script)  # warm-up
            for endpoint in ("/search", "/v1/embeddings"):
                results[mode][endpoint] = {str(c): load_run(server, endpoint, bodies[endpoint], c, args.seconds, script)
                                           for c in clients}
            results[mode]["rss_mib"] = [round(m, 1) for _, m, _ in server.rss]
            if mode == "on":
                print("searches during a stream of upserts", flush=True)
                writes = writes_phase(server, bodies["/search"], script, args.seconds, [d.text for d in docs])
                print(f"  {json.dumps({k: v for k, v in writes.items() if k != 'search'})}", flush=True)
        finally:
            server.stop()
    peer = None
    if not args.no_peer:
        print("peer: txtai API (building its index)", flush=True)
        build_txtai(work / "txtai-index", docs)
        get = {"search": work / "txtai-search.txt", "embeddings": work / "txtai-transform.txt"}
        get["search"].write_text("".join(f"/search?{urlencode({'query': q, 'limit': 10})}\n" for q in queries))
        get["embeddings"].write_text("".join(f"/transform?{urlencode({'text': t})}\n" for t in texts))
        get_script = work / "get.lua"
        get_script.write_text(LUA_GET)
        server = Server(work / "txtai-index", [], work / "server-txtai.log", peer=txtai_peer(work / "txtai-index", work))
        try:
            hits = server.http.get("/search", params={"query": queries[0], "limit": 10}).json()
            if len(hits) != 10 or not all(h.get("text") for h in hits):  # the peer returns what ours does
                raise SystemExit(f"txtai's /search gave {str(hits)[:300]}")
            wrk(server.base + "/", get["search"], 8, 3, get_script)  # warm-up
            peer = {key: {str(c): load_run(server, "/", get[key], c, args.seconds, get_script) for c in clients}
                    for key in ("search", "embeddings")}
            peer["rss_mib"] = [round(m, 1) for _, m, _ in server.rss]
        finally:
            server.stop()
    print("in-process (after)", flush=True)
    ceilings.append(in_process(folder, queries, texts, args.inprocess_seconds))
    print(f"  {ceilings[1]}", flush=True)

    top = str(max(clients))
    metrics = {"docs": len(docs), "seconds_per_run": args.seconds, "clients": clients,
               "in_process_before": ceilings[0], "in_process_after": ceilings[1]}
    for key, endpoint in ENDPOINT_OF:
        ceiling = max(c[key]["texts_per_s"] for c in ceilings)
        metrics[f"{key}_in_process_per_s"] = ceiling
        for mode in ("on", "off"):
            metrics[f"{key}_{mode}"] = results[mode][endpoint]
            metrics[f"{key}_ratio_{mode}_at_{top}"] = results[mode][endpoint][top]["qps"] / ceiling
    if peer is not None:
        from importlib.metadata import version

        metrics["txtai"] = {**peer, "version": version("txtai")}
        for key in ("search", "embeddings"):
            metrics[f"{key}_on_vs_txtai_at_{top}"] = results["on"][dict(ENDPOINT_OF)[key]][top]["qps"] / peer[key][top]["qps"]
    for mode in ("on", "off"):
        rss = results[mode]["rss_mib"]
        metrics[f"rss_mib_{mode}"] = rss
        steady = rss[len(rss) // 4:]  # after the first quarter (model and index warm, first batches done)
        metrics[f"rss_growth_mib_{mode}"] = (max(steady) - min(steady)) if steady else None
    print(json.dumps({k: v for k, v in metrics.items() if "ratio" in k or "growth" in k}), flush=True)
    if not args.no_record:
        out = Path(args.out)
        command = ["python", "benchmarks/serve_bench.py", *(argv if argv is not None else sys.argv[1:])]
        details = {"server_options": {"on": "--max-batch 32 --max-wait-ms 2", "off": "--max-batch 1"},
                   "load_generator": "wrk -t1 -cN, Lua script rotating request bodies",
                   "search_request": "SciFact queries, dense, k=10", "embeddings_request": "one STS-B test sentence",
                   "peer": None if peer is None else "txtai API (uvicorn txtai.api:app, one worker), FAISS IDMap,Flat, "
                   "content stored; GET /search?query=..&limit=10 and GET /transform?text=.."}
        write_record(out / "load.json", make_record("serve-load", metrics, command, time.perf_counter() - started,
                                                    details=details))
        if writes is not None:
            writes["search_without_writes"] = results["on"]["/search"].get("8")
            write_record(out / "writes.json", make_record("serve-writes", writes, command,
                                                          time.perf_counter() - started))
        print(f"records: {out / 'load.json'}, {out / 'writes.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
