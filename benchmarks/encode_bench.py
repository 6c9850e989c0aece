"""Encoding throughput and quality: embedkit's engine against sentence-transformers' ``encode``.

Speed (default): for each data set and batch size, the compared methods run interleaved
(ST, embedkit backend 1, backend 2, ST, ...) ``--repeats`` times on the same texts and model, each run
in a fresh process (after an untimed warm-up on 8 texts), so no method inherits another's state; each
method's throughput is the median over its runs, its best batch size is the one with the highest
median, and the ratio printed is (method at its best batch size) / (ST at its best batch size). Every
run records the load of other processes (see benchlib). The minimum cosine between each method's
embeddings and ST's is printed too (the default backend must stay >= 0.9999 for every text).

Quality (``--quality``): STS-B test Spearman (cosine, x100) and SciFact test nDCG@10 (exact cosine
search, pytrec_eval, x100) for each backend, on the full sets.

``--max-seq-length N`` cuts embedkit's inputs at N tokens (sentence-transformers, the reference, keeps the
model's own limit): the trade of quality for speed that fewer tokens buy, measured with both modes.

Runs on CUDA when ``--device cuda`` is given (the CPU-only backends are then skipped).

    python benchmarks/encode_bench.py --data stsb --limit 500 --batch-sizes 32,128 --repeats 3
    python benchmarks/encode_bench.py --quality --backends torch,onnx,onnx-int8,int8
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import Run, describe_load, machine, median, timed  # noqa: E402

ST = "sentence-transformers"


def stsb_sentences(root: Path) -> list[str]:
    rows = [line.split("\t") for line in (root / "stsb" / "sts-test.csv").read_text(encoding="utf-8").splitlines()]
    return [r[5] for r in rows] + [r[6] for r in rows]


def scifact_documents(root: Path) -> list[str]:
    from embedkit.data import load_beir
    from embedkit.training.datasets import document_text

    return [document_text(d) for d in load_beir(root / "scifact", split="test").corpus.values()]


DATA = {"stsb": stsb_sentences, "scifact": scifact_documents}


QUALITY_CACHE = None  # --cache: where quality mode reads/writes embeddings of the exact backends


# Not an embedkit backend: the default path with the transformer compiled by torch.compile (inductor),
# measured to see whether compiling would make a better default (``--backends torch,torch-compile``).
TORCH_COMPILE = "torch-compile"
MAX_SEQ_LENGTH = None  # --max-seq-length: embedkit's inputs cut at this many tokens (ST keeps the model's)
MODEL_MAX_SEQ_LENGTH = None  # the loaded model's own limit, which ST always uses


def embed(model, texts, method: str, batch_size: int, device: str | None) -> np.ndarray:
    from embedkit.encoding import EmbeddingCache, cached_encode, encode
    from embedkit.encoding.backends import changes_embeddings
    from embedkit.models import set_max_seq_length

    set_max_seq_length(model, MODEL_MAX_SEQ_LENGTH if method == ST or MAX_SEQ_LENGTH is None else MAX_SEQ_LENGTH)
    if QUALITY_CACHE is not None and (method == ST or not changes_embeddings(method)):
        return cached_encode(model, texts, batch_size=batch_size, device=device, show_progress=False,
                             cache=EmbeddingCache(QUALITY_CACHE), backend="torch" if method == ST else method)
    if method == TORCH_COMPILE:
        if not getattr(model, "compiled_for_bench", False):
            model[0].compile(dynamic=True)  # compiles on the first (untimed, warm-up) call
            model.compiled_for_bench = True
        method = "torch"
    if method == ST:
        return np.asarray(model.encode(texts, batch_size=batch_size, show_progress_bar=False, device=device),
                          dtype=np.float32)
    return encode(model, texts, batch_size=batch_size, device=device, backend=method, show_progress=False)


def speed(args, model) -> list[dict]:
    from embedkit.paths import data_dir

    records = []
    methods = [ST] + args.backends
    for name in args.data:
        texts = DATA[name](data_dir())
        texts = texts[:args.limit] if args.limit else texts
        reference = embed(model, texts, ST, 32, args.device)
        for method in args.backends:  # exports/quantises once, outside the timings (cached on disk)
            embed(model, texts[:8], method, 8, args.device)
        per_batch: dict[tuple[str, int], list] = {}
        for batch_size in args.batch_sizes:
            runs: dict[str, list[Run]] = {m: [] for m in methods}
            cosines: dict[str, float] = {}
            for _ in range(args.repeats):  # interleaved: ST, backend 1, backend 2, ST, ...
                for method in methods:
                    run, result = child(args, name, method, batch_size)
                    runs[method].append(run)
                    cosine = float(np.min(np.sum(result * reference, axis=1) /
                                          (np.linalg.norm(result, axis=1) * np.linalg.norm(reference, axis=1))))
                    cosines[method] = min(cosines.get(method, 1.0), cosine)
            for method in methods:
                per_batch[(method, batch_size)] = runs[method]
                rate = len(texts) / median([r.seconds for r in runs[method]])
                record = {"data": name, "texts": len(texts), "method": method, "batch_size": batch_size,
                          "texts_per_s": rate, "seconds": [r.seconds for r in runs[method]],
                          "cpu_seconds": [r.cpu_seconds for r in runs[method]],
                          "others_cpu": [r.others_cpu for r in runs[method]],
                          "load": [(r.load_before, r.load_after) for r in runs[method]],
                          "peak_rss_gb": [r.extra["peak_rss_gb"] for r in runs[method]],
                          "min_cosine_vs_st": cosines[method]}
                records.append(record)
                print(f"{name:8s} bs {batch_size:4d} {method:22s} {rate:8.1f} texts/s  min cos {cosines[method]:.6f}  "
                      f"{describe_load(runs[method])}", flush=True)
        best = {}
        for method in methods:
            rates = {bs: len(texts) / median([r.seconds for r in per_batch[(method, bs)]]) for bs in args.batch_sizes}
            best[method] = max(rates.items(), key=lambda kv: kv[1])
        for method in methods:
            bs, rate = best[method]
            ratio = rate / best[ST][1]
            print(f"==> {name}: {method} best at batch {bs}: {rate:.1f} texts/s = {ratio:.2f}x sentence-transformers "
                  f"(best at batch {best[ST][0]}: {best[ST][1]:.1f} texts/s)", flush=True)
            records.append({"data": name, "texts": len(texts), "method": method, "summary": True, "best_batch_size": bs,
                            "texts_per_s": rate, "ratio_vs_st": ratio})
    return records


def child(args, data: str, method: str, batch_size: int) -> tuple[Run, np.ndarray]:
    """One timed encode in a fresh process, so no method inherits another's process state (glibc's
    heap settings are process-wide: embedkit's CPU engine changes them, see embedkit.heap)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "embeddings.npy"
        command = [sys.executable, __file__, "--model", args.model, "--data", data, "--child-method", method,
                   "--child-batch", str(batch_size), "--child-out", str(out)]
        command += ["--limit", str(args.limit)] if args.limit else []
        command += ["--device", args.device] if args.device else []
        command += ["--max-seq-length", str(args.max_seq_length)] if args.max_seq_length else []
        finished = subprocess.run(command, capture_output=True, text=True)
        if finished.returncode:
            raise SystemExit(f"{method} at batch {batch_size} failed:\n{finished.stderr[-2000:]}")
        return Run(**json.loads(finished.stdout.strip().splitlines()[-1])), np.load(out)


def run_child(args, model) -> None:
    """The child side of :func:`child`: warm up on 8 texts, time one encode of them all, save the
    embeddings, print the measurement as JSON."""
    import resource

    from embedkit.paths import data_dir

    texts = DATA[args.data[0]](data_dir())
    texts = texts[:args.limit] if args.limit else texts
    embed(model, texts[:8], args.child_method, 8, args.device)
    run, result = timed(args.child_method, lambda: embed(model, texts, args.child_method, args.child_batch, args.device))
    run.extra["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    np.save(args.child_out, result)
    print(json.dumps(dataclasses.asdict(run)), flush=True)


def stsb_spearman(model, root: Path, method: str, batch_size: int, device) -> float:
    from scipy.stats import spearmanr

    rows = [line.split("\t") for line in (root / "stsb" / "sts-test.csv").read_text(encoding="utf-8").splitlines()]
    a = embed(model, [r[5] for r in rows], method, batch_size, device)
    b = embed(model, [r[6] for r in rows], method, batch_size, device)
    cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return 100 * float(spearmanr(cosine, [float(r[4]) for r in rows]).statistic)


def scifact_ndcg10(model, root: Path, method: str, batch_size: int, device) -> float:
    import pytrec_eval

    from embedkit.data import load_beir
    from embedkit.training.datasets import document_text

    data = load_beir(root / "scifact", split="test")
    doc_ids = list(data.corpus)
    docs = embed(model, [document_text(data.corpus[d]) for d in doc_ids], method, batch_size, device)
    query_ids = list(data.queries)
    queries = embed(model, [data.queries[q] for q in query_ids], method, batch_size, device)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    scores = queries @ docs.T
    run = {}
    for i, q in enumerate(query_ids):
        top = np.argsort(-scores[i])[:100]
        run[q] = {doc_ids[j]: float(scores[i, j]) for j in top}
    evaluator = pytrec_eval.RelevanceEvaluator(data.qrels, {"ndcg_cut.10"})
    return 100 * float(np.mean([v["ndcg_cut_10"] for v in evaluator.evaluate(run).values()]))


def quality(args, model) -> list[dict]:
    from embedkit.paths import data_dir

    records = []
    for method in args.backends:  # list sentence-transformers too to score the reference itself
        t0 = time.perf_counter()
        record = {"method": method, "stsb_test_spearman": stsb_spearman(model, data_dir(), method, 32, args.device)}
        if "scifact" in args.data:
            record["scifact_ndcg@10"] = scifact_ndcg10(model, data_dir(), method, 32, args.device)
        record["seconds"] = time.perf_counter() - t0
        records.append(record)
        print(json.dumps(record), flush=True)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default="stsb,scifact", help="comma list of: stsb (STS-B test sentences), "
                        "scifact (SciFact corpus abstracts)")
    parser.add_argument("--limit", type=int, default=None, help="first N texts of each data set (speed only)")
    parser.add_argument("--batch-sizes", default="16,32,64,128")
    parser.add_argument("--backends", default="torch,onnx-int8", help="embedkit backends to compare with ST")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None)
    parser.add_argument("--quality", action="store_true", help="measure quality instead of speed")
    parser.add_argument("--cache", default=None, help="quality mode: embedding cache folder for the backends that "
                        "give the model's own embeddings (torch, onnx, sentence-transformers), e.g. a shared one")
    parser.add_argument("--max-seq-length", type=int, default=None, help="cut embedkit's inputs at this many "
                        "tokens (sentence-transformers keeps the model's limit)")
    parser.add_argument("--out", default=None, help="append the records as JSON lines to this file")
    parser.add_argument("--child-method", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-batch", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    global QUALITY_CACHE, MAX_SEQ_LENGTH, MODEL_MAX_SEQ_LENGTH
    QUALITY_CACHE = args.cache if args.quality else None
    MAX_SEQ_LENGTH = args.max_seq_length
    args.data = args.data.split(",")
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    args.backends = [b for b in args.backends.split(",") if b]

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from embedkit.encoding.backends import CPU_ONLY
    from embedkit.models import load_model

    if args.device and args.device.startswith("cuda"):
        args.backends = [b for b in args.backends if b not in CPU_ONLY]
    model = load_model(args.model, device=args.device)
    MODEL_MAX_SEQ_LENGTH = model.max_seq_length
    if args.child_method:
        return run_child(args, model)
    print(f"machine {machine()}  torch {torch.__version__} threads {torch.get_num_threads()}  device "
          f"{args.device or model.device}", flush=True)
    records = quality(args, model) if args.quality else speed(args, model)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps({"benchmark": "encode", "quality" if args.quality else "speed": True,
                                    "argv": sys.argv[1:], **r}) + "\n")


if __name__ == "__main__":
    main()
