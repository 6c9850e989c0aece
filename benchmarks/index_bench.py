"""Benchmark embedkit's FAISS layer against raw FAISS on real embeddings of the default model.

Vectors: the unique sentences of the shared data folder (see ``bench_sentences.py``), encoded once by
all-MiniLM-L6-v2 through ``cached_encode`` (set ``EMBEDKIT_CACHE`` to share the cache). The first
``--queries`` sentences are the queries, the rest the database; ``--limit`` caps the sentences used.

Per spec: build time, batch QPS (all queries in one call), one-query-at-a-time QPS, recall@10 against
exact search, FAISS file size and RSS growth, each through embedkit's ``FaissIndex`` and through raw
``faiss`` calls on the same vectors with the same search parameter, plus the layer's overhead. Timings
are the best of ``--repeats`` interleaved runs (the machine is shared). A recall-versus-QPS sweep is
plotted to PNG. ``--memory-check N`` instead builds an index of N vectors (real vectors plus perturbed
copies, labelled as such) from a .npy file in a child process and reports its peak resident memory.

    EMBEDKIT_CACHE=/work/cache HF_HUB_OFFLINE=1 PYTHONPATH=. nice .venv/bin/python benchmarks/index_bench.py --limit 30000
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sentences import unique_sentences  # noqa: E402

K = 10


def load_vectors(limit: int | None, batch_size: int, vectors: str | None = None) -> np.ndarray:
    """The default model's embeddings of the first ``limit`` bench sentences: from the embedding cache
    (encoding what is missing), or from ``vectors``, a .npy whose row i embeds sentence i (what
    ``stream_bench.py`` writes for the same sentences), so that they are encoded once."""
    from embedkit.encoding import cached_encode
    from embedkit.models import load_model, model_fingerprint
    from embedkit.paths import data_dir

    sentences = unique_sentences(data_dir())
    if limit:
        sentences = sentences[:limit]
    if vectors:
        rows = np.load(vectors, mmap_mode="r")
        if len(rows) < len(sentences):
            sys.exit(f"{vectors}: {len(rows)} rows, but {len(sentences)} sentences are asked for (use --limit)")
        return np.asarray(rows[:len(sentences)], dtype=np.float32)
    model = load_model(device="cpu")
    return cached_encode(model, sentences, role="document", batch_size=batch_size,
                         fingerprint=model_fingerprint(model), show_progress=True)


def rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def best_time(fn, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def interleaved(fns: dict, repeats: int) -> dict:
    """Best wall and best CPU time of each function, alternating between them so load changes hit all alike.

    CPU time (``process_time``) is the steadier figure on a shared machine: time spent descheduled
    does not count. With one FAISS thread it is the work done, so overheads are computed from it.
    """
    best = {name: [math.inf, math.inf] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            best[name] = [min(best[name][0], wall), min(best[name][1], cpu)]
    return best


def layer_only_cpu(layer, queries: np.ndarray, repeats: int, read_all: bool = False) -> float:
    """CPU seconds the layer adds around FAISS for one ``search`` of ``queries``: preparing the queries
    (copy, normalise, checks) and wrapping the labels in ``SearchResults``; with ``read_all`` also
    building every ``Hit`` (what a caller who reads every row pays). Measured apart from FAISS, so the
    figure does not drown in the noise of timing two full searches."""
    x = layer._prepare(queries, "search")
    scores, labels = layer.faiss_index.search(x, K)
    best = math.inf
    for _ in range(repeats * 3):
        cpu = time.process_time()
        layer._prepare(queries, "search")
        results = layer._to_hits(scores, labels)
        if read_all:
            list(results)
        best = min(best, time.process_time() - cpu)
    return best


def hit_labels(rows) -> np.ndarray:
    """Hits (ids are row numbers) as a (queries, K) int array, -1 where fewer than K came back."""
    out = np.full((len(rows), K), -1, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, :len(row)] = [int(h.id) for h in row]
    return out


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(f, e)) / len(e) for f, e in zip(found, exact)]))


def default_specs(n: int) -> list[str]:
    nlist = 1024 if n >= 90_000 else 2 ** round(math.log2(4 * math.sqrt(n)))
    return ["Flat", "HNSW32", f"IVF{nlist},Flat", f"IVF{nlist},PQ32"]


def knob_values(spec: str) -> tuple[str | None, list[int], int | None]:
    """The search parameter, its sweep, and the fixed value used for the head-to-head table."""
    if spec.startswith("HNSW"):
        return "efSearch", [16, 24, 32, 48, 64, 96, 128, 256], 64
    if spec.startswith("IVF"):
        return "nprobe", [1, 2, 4, 8, 16, 32, 64, 128], 32
    return None, [], None


def bench_spec(spec: str, db: np.ndarray, queries: np.ndarray, exact: np.ndarray, repeats: int,
               single: int) -> dict:
    import faiss

    from embedkit.index import FaissIndex
    from embedkit.index.specs import training_size

    ids = [str(i) for i in range(len(db))]
    knob, sweep, fixed = knob_values(spec)

    gc.collect()
    rss0 = rss()
    t0 = time.perf_counter()
    layer = FaissIndex(db.shape[1], spec, "cosine")
    sample = training_size(layer.faiss_index)
    train_rows = np.linspace(0, len(db) - 1, min(sample, len(db))).astype(np.int64) if sample else None
    if sample:
        layer.train(db[train_rows])
    for start in range(0, len(db), 65536):
        layer.add(ids[start:start + 65536], db[start:start + 65536])
    layer_build = time.perf_counter() - t0
    layer_rss = rss() - rss0

    # raw FAISS: the vectors are unit length already (normalised once, outside the timing of both)
    t0 = time.perf_counter()
    raw = faiss.index_factory(db.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
    inner = faiss.downcast_index(faiss.extract_index_ivf(raw)) if spec.startswith("IVF") else raw
    if hasattr(inner, "do_polysemous_training"):
        inner.do_polysemous_training = False  # same as the layer: polysemous codes are never used
    if sample:
        raw.train(db[train_rows])
    raw.add(db)
    raw_build = time.perf_counter() - t0

    def set_knob(value):
        if knob == "efSearch":
            faiss.ParameterSpace().set_index_parameter(raw, "efSearch", value)
        elif knob == "nprobe":
            faiss.ParameterSpace().set_index_parameter(raw, "nprobe", value)
        if knob:
            layer.set_search_params(**{knob: value})

    if knob:
        set_knob(fixed)
    one = queries[:single]
    times = interleaved({
        "raw_batch": lambda: raw.search(queries, K),
        "layer_batch": lambda: layer.search(queries, K),
        "layer_arrays": lambda: layer.search_arrays(queries, K),
        "layer_read_all": lambda: list(layer.search(queries, K)),
    }, repeats)
    single_times = interleaved({
        "raw_single": lambda: [raw.search(one[i:i + 1], K) for i in range(len(one))],
        "layer_single": lambda: [layer.search(one[i:i + 1], K) for i in range(len(one))],
    }, max(2, repeats // 2))
    layer_batch_cpu = layer_only_cpu(layer, queries, repeats)
    layer_read_all_cpu = layer_only_cpu(layer, queries, repeats, read_all=True)
    layer_single_cpu = np.mean([layer_only_cpu(layer, one[i:i + 1], 1) for i in range(len(one))])
    raw_found = raw.search(queries, K)[1]
    layer_found = hit_labels(layer.search(queries, K))

    with tempfile.TemporaryDirectory() as tmp:
        layer.save(tmp)
        meta = json.loads((Path(tmp) / "meta.json").read_text())
        faiss_bytes = next(r["bytes"] for n, r in meta["files"].items() if n.startswith("index-"))

    curve = []
    for value in sweep:
        set_knob(value)
        t = best_time(lambda: layer.search(queries, K), max(2, repeats // 2))
        found = hit_labels(layer.search(queries, K))
        curve.append({"value": value, "qps": len(queries) / t, "recall": recall(found, exact)})
    tune = None
    if knob:
        result = layer.tune(queries[:500], target_recall=0.95, k=K, reference_ids=ids, reference_vectors=db)
        tune = {"value": result.value, "recall": result.recall, "reached": result.reached, "message": result.message}

    row = {
        "spec": spec, "param": f"{knob}={fixed}" if knob else "-",
        "build_s_layer": layer_build, "build_s_raw": raw_build,
        "batch_qps_layer": len(queries) / times["layer_batch"][0], "batch_qps_raw": len(queries) / times["raw_batch"][0],
        "batch_qps_layer_arrays": len(queries) / times["layer_arrays"][0],
        "batch_qps_layer_read_all": len(queries) / times["layer_read_all"][0],
        "single_qps_layer": single / single_times["layer_single"][0],
        "single_qps_raw": single / single_times["raw_single"][0],
        "recall_layer": recall(layer_found, exact), "recall_raw": recall(raw_found, exact),
        "faiss_file_mb": faiss_bytes / 2**20, "rss_growth_mb": layer_rss / 2**20,
        "vector_mb": db.nbytes / 2**20, "curve": curve, "tune": tune,
        "cpu_s": {name: t[1] for name, t in {**times, **single_times}.items()},
    }

    def overhead(layer_name: str, raw_name: str, kind: int) -> float:
        table = {**times, **single_times}
        return 100 * (table[layer_name][kind] / table[raw_name][kind] - 1)

    row["layer_only_ms_batch"] = 1000 * layer_batch_cpu
    row["layer_only_us_single"] = 1e6 * layer_single_cpu
    row["batch_overhead_direct_pct"] = 100 * layer_batch_cpu / times["raw_batch"][1]
    row["layer_read_all_ms_batch"] = 1000 * layer_read_all_cpu
    row["batch_read_all_direct_pct"] = 100 * layer_read_all_cpu / times["raw_batch"][1]
    row["single_overhead_direct_pct"] = 100 * layer_single_cpu * single / single_times["raw_single"][1]
    row["batch_overhead_pct"] = overhead("layer_batch", "raw_batch", 1)
    row["batch_overhead_arrays_pct"] = overhead("layer_arrays", "raw_batch", 1)
    row["batch_overhead_read_all_pct"] = overhead("layer_read_all", "raw_batch", 1)
    row["single_overhead_pct"] = overhead("layer_single", "raw_single", 1)
    row["batch_overhead_wall_pct"] = overhead("layer_batch", "raw_batch", 0)
    row["single_overhead_wall_pct"] = overhead("layer_single", "raw_single", 0)
    del layer, raw
    gc.collect()
    return row


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, row in enumerate(rows):
        if row["curve"]:
            ax.plot([p["recall"] for p in row["curve"]], [p["qps"] for p in row["curve"]], marker="o", color=f"C{i}",
                    label=f"{row['spec']} ({row['param'].split('=')[0]} sweep)")
        else:
            ax.scatter([row["recall_layer"]], [row["batch_qps_layer"]], marker="*", s=120, color=f"C{i}",
                       label=row["spec"])
    ax.set_xlabel("recall@10 vs exact search")
    ax.set_ylabel("queries / s (batch, through embedkit)")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def table(rows: list[dict]) -> str:
    lines = ["| spec | param | build s (layer / raw) | batch QPS layer | batch QPS raw | batch overhead, CPU "
             "(search / reading every Hit / arrays) [wall] | "
             "1-query QPS layer | 1-query QPS raw | 1-query overhead, CPU [wall] | recall@10 layer / raw | FAISS file MB | "
             "RSS growth MB | tune(0.95) | layer-only CPU: batch ms (% of raw) / 1 query us (% of raw) |",
             "|" + "---|" * 14]
    for r in rows:
        tune = "-" if not r["tune"] else (f"{r['tune']['value']} -> {r['tune']['recall']:.3f}"
                                          + ("" if r["tune"]["reached"] else " (not reached)"))
        lines.append(f"| {r['spec']} | {r['param']} | {r['build_s_layer']:.1f} / {r['build_s_raw']:.1f} | "
                     f"{r['batch_qps_layer']:,.0f} | {r['batch_qps_raw']:,.0f} | {r['batch_overhead_pct']:+.1f}% / "
                     f"{r['batch_overhead_read_all_pct']:+.1f}% / "
                     f"{r['batch_overhead_arrays_pct']:+.1f}% [{r['batch_overhead_wall_pct']:+.1f}%] | "
                     f"{r['single_qps_layer']:,.0f} | {r['single_qps_raw']:,.0f} | {r['single_overhead_pct']:+.1f}% "
                     f"[{r['single_overhead_wall_pct']:+.1f}%] | "
                     f"{r['recall_layer']:.3f} / {r['recall_raw']:.3f} | {r['faiss_file_mb']:.1f} | "
                     f"{r['rss_growth_mb']:.0f} | {tune} | {r['layer_only_ms_batch']:.1f} ({r['batch_overhead_direct_pct']:.1f}%) / "
                     f"{r['layer_only_us_single']:.0f} ({r['single_overhead_direct_pct']:.1f}%) |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ memory check


def memory_child(npy: str, spec: str, threads: int) -> None:
    """Runs in a fresh process: build from the .npy, report peak RSS (VmHWM) as one JSON line."""
    import faiss

    from embedkit.index.build import NpyRows, build_from_vectors

    faiss.omp_set_num_threads(threads)
    rows = NpyRows(npy)
    before = _vm("VmHWM")
    t0 = time.perf_counter()
    index = build_from_vectors([f"v{i}" for i in range(len(rows))], rows, spec, "cosine", show_progress=False)
    elapsed = time.perf_counter() - t0
    print(json.dumps({"count": len(index), "spec": spec, "build_s": elapsed, "peak_rss_bytes": _vm("VmHWM"),
                      "rss_before_build_bytes": before, "vector_bytes": int(np.prod(rows.shape)) * 4}))


def _vm(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def memory_check(base: np.ndarray, n: int, spec: str, threads: int, seed: int = 0) -> dict:
    """N vectors: the real ones, then copies plus Gaussian noise of norm about 0.3, renormalised."""
    rng = np.random.default_rng(seed)
    base = base / np.linalg.norm(base, axis=1, keepdims=True)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        path = Path(tmp) / "vectors.npy"
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, base.shape[1]))
        for start in range(0, n, len(base)):
            stop = min(start + len(base), n)
            block = base[: stop - start].copy()
            if start:
                block += rng.standard_normal(block.shape, dtype=np.float32) * (0.3 / math.sqrt(base.shape[1]))
                block /= np.linalg.norm(block, axis=1, keepdims=True)
            out[start:stop] = block
        out.flush()
        del out
        proc = subprocess.run([sys.executable, __file__, "--memory-child", str(path), "--spec", spec,
                               "--threads", str(threads)], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["budget_bytes"] = result["vector_bytes"] + int(1.5 * 2**30)
    result["within_budget"] = result["peak_rss_bytes"] <= result["budget_bytes"]
    result["real_vectors"] = len(base)
    result["perturbed_copies"] = n - min(n, len(base))
    return result


def scifact(batch_size: int, threads: int) -> dict:
    """SciFact test nDCG@10 (pytrec_eval) for BM25, dense (Flat, HNSW32 tuned to 0.95) and hybrid (RRF)."""
    import pytrec_eval

    from embedkit.data import load_beir
    from embedkit.encoding import cached_encode
    from embedkit.data import full_text
    from embedkit.index import BM25Index, FaissIndex, HybridSearcher
    from embedkit.models import load_model, model_fingerprint
    from embedkit.paths import data_dir

    data = load_beir(data_dir() / "scifact", split="test")
    model = load_model(device="cpu")
    fingerprint = model_fingerprint(model)
    ids = list(data.corpus)
    doc_vectors = cached_encode(model, [full_text(d.title, d.text) for d in data.corpus.values()], role="document",
                                batch_size=batch_size, fingerprint=fingerprint, show_progress=True)
    qids = list(data.queries)
    query_texts = [data.queries[q] for q in qids]
    query_vectors = cached_encode(model, query_texts, role="query", batch_size=batch_size, fingerprint=fingerprint)
    evaluator = pytrec_eval.RelevanceEvaluator(data.qrels, {"ndcg_cut.10"})

    def ndcg(rows) -> float:
        run = {q: {h.id: float(h.score) for h in row} for q, row in zip(qids, rows)}
        return float(np.mean([v["ndcg_cut_10"] for v in evaluator.evaluate(run).values()]))

    bm25 = BM25Index.from_documents(data.corpus.values())
    result = {"queries": len(qids), "documents": len(ids), "bm25": ndcg(bm25.search(query_texts, 100))}
    for spec in ("Flat", "HNSW32"):
        index = FaissIndex(doc_vectors.shape[1], spec)
        index.add(ids, doc_vectors)
        if spec != "Flat":
            tuned = index.tune(query_vectors, target_recall=0.95, k=10)
            result[f"{spec}_tune"] = tuned.message
            result[f"{spec}_recall@10_vs_exact"] = tuned.recall
        result[f"dense_{spec}"] = ndcg(index.search(query_vectors, 100))
        result[f"hybrid_{spec}"] = ndcg(HybridSearcher(index, bm25, depth=100).search(query_texts, 100, query_vectors))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="use the first N sentences (default: all ~104k)")
    parser.add_argument("--queries", type=int, default=1000, help="held-out query sentences (default 1000)")
    parser.add_argument("--spec", action="append", help="FAISS spec (repeat); default Flat, HNSW32, IVF,Flat, IVF,PQ32")
    parser.add_argument("--threads", type=int, default=2, help="FAISS OpenMP threads (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timing repeats, best kept (default 5)")
    parser.add_argument("--single", type=int, default=200, help="queries timed one at a time (default 200)")
    parser.add_argument("--batch-size", type=int, default=64, help="encoding batch size")
    parser.add_argument("--vectors", default=None, help="a .npy of the sentences' embeddings, row i = sentence i "
                        "(e.g. stream_bench.py's full.npy) instead of the embedding cache")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the JSON and PNG")
    parser.add_argument("--memory-check", type=int, default=None, metavar="N",
                        help="build N vectors (real + perturbed copies) from a .npy and report peak RSS")
    parser.add_argument("--scifact", action="store_true",
                        help="SciFact test nDCG@10: BM25, dense (Flat / tuned HNSW32), hybrid")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.memory_child:
        memory_child(args.memory_child, (args.spec or ["Flat"])[0], args.threads)
        return
    import faiss

    faiss.omp_set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.scifact:
        result = scifact(args.batch_size, args.threads)
        (out / "index_scifact.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result))
        return
    vectors = load_vectors(args.limit, args.batch_size, args.vectors)
    if args.memory_check:
        result = memory_check(vectors, args.memory_check, (args.spec or ["Flat"])[0], args.threads)
        name = f"index_memory_{args.memory_check}_{result['spec'].replace(',', '_')}.json"
        (out / name).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result))
        return

    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    queries, db = np.ascontiguousarray(vectors[:args.queries]), np.ascontiguousarray(vectors[args.queries:])
    exact = faiss.knn(queries, db, K, metric=faiss.METRIC_INNER_PRODUCT)[1]
    specs = args.spec or default_specs(len(db))
    rows = []
    for spec in specs:
        print(f"[{spec}] ...", file=sys.stderr, flush=True)
        rows.append(bench_spec(spec, db, queries, exact, args.repeats, args.single))
        print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    title = (f"all-MiniLM-L6-v2 embeddings of {len(db):,} real sentences, {len(queries)} held-out queries, "
             f"{args.threads} FAISS thread(s)")
    stem = f"index_bench_{len(db)}"
    (out / f"{stem}.json").write_text(json.dumps({"title": title, "database": len(db), "queries": len(queries),
                                                  "threads": args.threads, "faiss": faiss.__version__,
                                                  "rows": rows}, indent=2) + "\n")
    plot(rows, out / f"{stem}.png", title)
    print(title)
    print(table(rows))
    print(f"wrote {out / (stem + '.json')} and {out / (stem + '.png')}")


if __name__ == "__main__":
    main()
