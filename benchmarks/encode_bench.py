"""Encoding throughput and quality: embedkit's engine against sentence-transformers' ``encode``.

Speed (default): for each data set and batch size, the compared methods run interleaved
(ST, embedkit backend 1, backend 2, ST, ...) ``--repeats`` times on the same texts and model, each run
in a fresh process (after an untimed warm-up on 8 texts), so no method inherits another's state; each
method's throughput is the median over its quiet runs (benchlib.quiet_seconds: other processes used at
most QUIET_OTHERS_CPU cores; all runs when none was; a loaded run is tried again ``--retry-loaded``
times), its best batch size is the one with the highest
median, and the ratio printed is (method at its best batch size) / (ST at its best batch size). Every
run records the load of other processes (see benchlib). The minimum cosine between each method's
embeddings and ST's is printed too (the default backend must stay >= 0.9999 for every text).

Quality (``--quality``): STS-B test Spearman (cosine, x100) and SciFact test nDCG@10 (exact cosine
search, pytrec_eval, x100) for each backend, on the full sets; a row more than ``QUALITY_TOLERANCE``
points under sentence-transformers float32 on either is flagged.

Methods (``--backends``, a comma list) are embedkit's backends (``torch``, ``auto``, ``bf16``, ``int8``,
``onnx``, ``onnx-int8``, ``openvino``, ``openvino-int8``), ``static`` (the model distilled by
``embedkit distill static``, given by ``--static-model``, on embedkit's engine) and sentence-transformers'
own fast backends (``st-onnx-O1`` ... ``st-onnx-O4``, ``st-onnx-int8``, ``st-openvino``,
``st-openvino-int8``), which run in their own virtualenv (``--peer-python``; see st_peers.py for why and
make_peer_venv.sh for how). ``st-bf16`` / ``st-fp16`` are sentence-transformers' own torch model cast to that
dtype (``model.bfloat16()`` / ``model.half()``, what a user of it tries first on a CPU with bf16 hardware or on
a GPU), run in this environment like the float32 row, since a cast needs no optimum export.
sentence-transformers float32 (this environment's) is always the first row.
``--record PATH`` writes the run as a record (embedkit.records) with the CPU's model and flags.

``--max-seq-length N`` cuts embedkit's inputs at N tokens (sentence-transformers, the reference, keeps the
model's own limit): the trade of quality for speed that fewer tokens buy, measured with both modes.

Runs on CUDA when ``--device cuda`` is given (the CPU-only backends are then skipped).

    python benchmarks/encode_bench.py --data stsb --limit 500 --batch-sizes 32,128 --repeats 3
    python benchmarks/encode_bench.py --quality --backends torch,onnx,onnx-int8,int8
    python benchmarks/encode_bench.py --data stsb --batch-sizes 16,32 --backends torch,auto,st-onnx-int8 \
        --peer-python /work/cache/peer-venv/bin/python --record results/encode/amd-f23m49-avx2/speed-stsb.json
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
from benchlib import QUIET_OTHERS_CPU, Run, describe_load, machine, median, quiet_seconds, timed  # noqa: E402

ST = "sentence-transformers"
STATIC = "static"  # the --static-model, encoded by embedkit's engine
PEER_PREFIX = "st-"  # sentence-transformers' own fast backends, run in the peer virtualenv (st_peers.py)
ST_CAST = {"st-bf16": "bfloat16", "st-fp16": "float16"}  # sentence-transformers' model cast to this dtype, run here
QUALITY_TOLERANCE = 0.5  # points of STS-B Spearman or SciFact nDCG@10 a row may lose before it is flagged
PEER_PYTHON = None  # --peer-python
PEER_WORK = None  # --peer-work: where st_peers.py keeps the exported models
STATIC_MODEL = None  # --static-model, loaded once per process
CAST_MODELS: dict = {}  # cast_model's copies, one per method


def is_sentence_transformers(method: str) -> bool:
    """Whether ``method`` is a sentence-transformers row (the rows embedkit's must be compared with)."""
    return method == ST or method.startswith(PEER_PREFIX)


def is_peer(method: str) -> bool:
    """Whether ``method`` runs in the peer virtualenv (every sentence-transformers row but float32 and the casts)."""
    return method.startswith(PEER_PREFIX) and method not in ST_CAST


def cast_model(model, method: str):
    """A copy of ``model`` cast to ``method``'s dtype (a copy: quality mode scores every method in one process)."""
    import copy

    import torch

    if method not in CAST_MODELS:
        CAST_MODELS[method] = copy.deepcopy(model).to(getattr(torch, ST_CAST[method]))
    return CAST_MODELS[method]


def model_dir(model_arg: str) -> str:
    """The model folder the peer environment loads (it has no embedkit, so no 'default')."""
    from embedkit.models import default_model_path

    return str(default_model_path()) if model_arg in (None, "default") else model_arg


def peer_encode(texts: list[str], method: str, batch_size: int, model_arg: str) -> tuple[dict, np.ndarray]:
    """One encode by sentence-transformers' ``method`` in a fresh process of the peer environment."""
    if PEER_PYTHON is None:
        raise SystemExit(f"{method} runs in the peer virtualenv: pass --peer-python (see make_peer_venv.sh)")
    with tempfile.TemporaryDirectory() as tmp:
        source, out = Path(tmp) / "texts.json", Path(tmp) / "embeddings.npy"
        source.write_text(json.dumps(texts), encoding="utf-8")
        command = [PEER_PYTHON, str(Path(__file__).with_name("st_peers.py")), "encode", "--model", model_dir(model_arg),
                   "--work", PEER_WORK, "--method", method, "--texts", str(source), "--batch", str(batch_size),
                   "--out", str(out)]
        finished = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if finished.returncode:
            raise SystemExit(f"{method} at batch {batch_size} failed:\n{finished.stderr[-2000:]}")
        return json.loads(finished.stdout.strip().splitlines()[-1]), np.load(out)


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
MODEL_ARG = "default"  # --model, for the peer processes


def static_model():
    global STATIC_MODEL
    if isinstance(STATIC_MODEL, str):
        from embedkit.models import load_model

        STATIC_MODEL = load_model(STATIC_MODEL, device="cpu")
    if STATIC_MODEL is None:
        raise SystemExit("the static row needs --static-model DIR (made by embedkit distill static)")
    return STATIC_MODEL


def embed(model, texts, method: str, batch_size: int, device: str | None) -> np.ndarray:
    from embedkit.encoding import EmbeddingCache, cached_encode, encode
    from embedkit.encoding.backends import changes_embeddings
    from embedkit.models import set_max_seq_length

    if is_peer(method):
        return peer_encode(list(texts), method, batch_size, MODEL_ARG)[1]
    if method == STATIC:
        return encode(static_model(), texts, batch_size=batch_size, device=device, show_progress=False)

    if method in ST_CAST:  # sentence-transformers' own encode, at the model's own token limit like the float32 row
        cast = cast_model(model, method)
        set_max_seq_length(cast, MODEL_MAX_SEQ_LENGTH)
        return np.asarray(cast.encode(texts, batch_size=batch_size, show_progress_bar=False, device=device),
                          dtype=np.float32)
    set_max_seq_length(model, MODEL_MAX_SEQ_LENGTH if method == ST or MAX_SEQ_LENGTH is None else MAX_SEQ_LENGTH)
    if QUALITY_CACHE is not None and method != "auto" and (method == ST or not changes_embeddings(method)):
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
            if not is_peer(method):
                embed(model, texts[:8], method, 8, args.device)
        per_batch: dict[tuple[str, int], list] = {}
        for batch_size in args.batch_sizes:
            runs: dict[str, list[Run]] = {m: [] for m in methods}
            cosines: dict[str, float] = {}
            for _ in range(args.repeats):  # interleaved: ST, backend 1, backend 2, ST, ...
                for method in methods:
                    for _ in range(1 + args.retry_loaded):  # a run under load is kept, and tried again
                        run, result = child(args, name, method, batch_size)
                        runs[method].append(run)
                        if run.others_cpu <= QUIET_OTHERS_CPU:
                            break
                    if result.shape != reference.shape:  # the static model: another embedding space
                        cosines[method] = None
                        continue
                    cosine = float(np.min(np.sum(result * reference, axis=1) /
                                          (np.linalg.norm(result, axis=1) * np.linalg.norm(reference, axis=1))))
                    cosines[method] = min(cosines.get(method, 1.0), cosine)
            for method in methods:
                per_batch[(method, batch_size)] = runs[method]
                rate = len(texts) / _quiet_median(runs[method])
                record = {"data": name, "texts": len(texts), "method": method, "batch_size": batch_size,
                          "texts_per_s": rate, "seconds": [r.seconds for r in runs[method]],
                          "cpu_seconds": [r.cpu_seconds for r in runs[method]],
                          "others_cpu": [r.others_cpu for r in runs[method]],
                          "load": [(r.load_before, r.load_after) for r in runs[method]],
                          "peak_rss_gb": [r.extra["peak_rss_gb"] for r in runs[method]],
                          "min_cosine_vs_st": cosines[method]}
                records.append(record)
                print(f"{name:8s} bs {batch_size:4d} {method:22s} {rate:8.1f} texts/s  min cos {cosines[method] if cosines[method] is not None else float('nan'):.6f}  "
                      f"{describe_load(runs[method])}", flush=True)
        best = {}
        for method in methods:
            rates = {bs: len(texts) / _quiet_median(per_batch[(method, bs)]) for bs in args.batch_sizes}
            best[method] = max(rates.items(), key=lambda kv: kv[1])
        best_peer = max((m for m in methods if is_sentence_transformers(m)), key=lambda m: best[m][1])
        for method in methods:
            bs, rate = best[method]
            ratio = rate / best[ST][1]
            print(f"==> {name}: {method} best at batch {bs}: {rate:.1f} texts/s = {ratio:.2f}x sentence-transformers "
                  f"(best at batch {best[ST][0]}: {best[ST][1]:.1f} texts/s), {rate / best[best_peer][1]:.2f}x its best "
                  f"backend ({best_peer})", flush=True)
            records.append({"data": name, "texts": len(texts), "method": method, "summary": True, "best_batch_size": bs,
                            "texts_per_s": rate, "ratio_vs_st": ratio, "ratio_vs_best_st": rate / best[best_peer][1],
                            "best_st": best_peer})
    return records


def _quiet_median(runs: list[Run]) -> float:
    """Median seconds of the quiet runs (benchlib.quiet_seconds), of all runs when none was quiet."""
    return median(quiet_seconds([r.seconds for r in runs], [r.others_cpu for r in runs])[0])


def child(args, data: str, method: str, batch_size: int) -> tuple[Run, np.ndarray]:
    """One timed encode in a fresh process, so no method inherits another's process state (glibc's
    heap settings are process-wide: embedkit's CPU engine changes them, see embedkit.heap)."""
    if is_peer(method):
        from embedkit.paths import data_dir

        texts = DATA[data](data_dir())
        run, result = peer_encode(texts[:args.limit] if args.limit else texts, method, batch_size, args.model)
        return Run(**run), result
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "embeddings.npy"
        command = [sys.executable, __file__, "--model", args.model, "--data", data, "--child-method", method,
                   "--child-batch", str(batch_size), "--child-out", str(out)]
        command += ["--limit", str(args.limit)] if args.limit else []
        command += ["--device", args.device] if args.device else []
        command += ["--max-seq-length", str(args.max_seq_length)] if args.max_seq_length else []
        command += ["--static-model", args.static_model] if args.static_model else []
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


def stsb_spearman(model, root: Path, method: str, batch_size: int, device, split: str = "test") -> float:
    from scipy.stats import spearmanr

    rows = [line.split("\t") for line in (root / "stsb" / f"sts-{split}.csv").read_text(encoding="utf-8").splitlines()]
    a = embed(model, [r[5] for r in rows], method, batch_size, device)
    b = embed(model, [r[6] for r in rows], method, batch_size, device)
    cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return 100 * float(spearmanr(cosine, [float(r[4]) for r in rows]).statistic)


def scifact_ndcg10(model, root: Path, method: str, batch_size: int, device, split: str = "test") -> float:
    import pytrec_eval

    from embedkit.data import load_beir
    from embedkit.training.datasets import document_text

    data = load_beir(root / "scifact", split=split)
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
        if "scifact" in args.data and method not in args.skip_scifact:
            record["scifact_ndcg@10"] = scifact_ndcg10(model, data_dir(), method, 32, args.device)
        record["seconds"] = time.perf_counter() - t0
        records.append(record)
        print(json.dumps(record), flush=True)
    return flag_losses(records)


def flag_losses(records: list[dict]) -> list[dict]:
    """Mark each row that loses more than QUALITY_TOLERANCE points against sentence-transformers float32."""
    reference = next((r for r in records if r["method"] == ST), None)
    if reference is None:
        return records
    for record in records:
        losses = {metric: reference[metric] - record[metric] for metric in ("stsb_test_spearman", "scifact_ndcg@10")
                  if metric in record and metric in reference}
        record["loss_vs_st"] = losses
        record["flagged"] = any(loss > QUALITY_TOLERANCE for loss in losses.values())
        if record["flagged"]:
            print(f"FLAG: {record['method']} loses more than {QUALITY_TOLERANCE} points: {losses}", flush=True)
    return records


def peer_versions() -> dict:
    """The package versions of the peer environment (they differ from this one's: see st_peers.py)."""
    if PEER_PYTHON is None:
        return {}
    code = ("import json, importlib.metadata as m; print(json.dumps({p: m.version(p) for p in ['sentence-transformers', "
            "'transformers', 'torch', 'onnxruntime', 'openvino', 'optimum', 'optimum-onnx', 'optimum-intel', 'nncf']}))")
    finished = subprocess.run([PEER_PYTHON, "-c", code], capture_output=True, text=True)
    return json.loads(finished.stdout) if finished.returncode == 0 else {"error": finished.stderr[-300:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default="stsb,scifact", help="comma list of: stsb (STS-B test sentences), "
                        "scifact (SciFact corpus abstracts)")
    parser.add_argument("--limit", type=int, default=None, help="first N texts of each data set (speed only)")
    parser.add_argument("--batch-sizes", default="16,32,64,128")
    parser.add_argument("--backends", default="torch,onnx-int8", help="embedkit backends to compare with ST")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--retry-loaded", type=int, default=1, help="times a timed run is tried again when other "
                        "processes used more than benchlib.QUIET_OTHERS_CPU cores during it (every try is recorded)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--quality", action="store_true", help="measure quality instead of speed")
    parser.add_argument("--cache", default=None, help="quality mode: embedding cache folder for the backends that "
                        "give the model's own embeddings (torch, onnx, sentence-transformers), e.g. a shared one")
    parser.add_argument("--max-seq-length", type=int, default=None, help="cut embedkit's inputs at this many "
                        "tokens (sentence-transformers keeps the model's limit)")
    parser.add_argument("--out", default=None, help="append the records as JSON lines to this file")
    parser.add_argument("--record", default=None, help="write the run as one record (results/encode/NAME.json)")
    parser.add_argument("--peer-python", default=None, help="python of the virtualenv with sentence-transformers' "
                        "onnx/openvino backends (for the st-* methods; see make_peer_venv.sh)")
    parser.add_argument("--peer-work", default=None, help="folder of the peers' exported models "
                        "(default $EMBEDKIT_CACHE/st-peers; st_peers.py prepare fills it)")
    parser.add_argument("--static-model", default=None, help="the static model folder for the 'static' row")
    parser.add_argument("--skip-scifact", default="", help="quality mode: methods scored on STS-B only (comma list)")
    parser.add_argument("--child-method", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-batch", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    global QUALITY_CACHE, MAX_SEQ_LENGTH, MODEL_MAX_SEQ_LENGTH, MODEL_ARG, PEER_PYTHON, PEER_WORK, STATIC_MODEL
    QUALITY_CACHE = args.cache if args.quality else None
    MODEL_ARG, PEER_PYTHON, STATIC_MODEL = args.model, args.peer_python, args.static_model
    args.skip_scifact = [m for m in args.skip_scifact.split(",") if m]
    MAX_SEQ_LENGTH = args.max_seq_length
    args.data = args.data.split(",")
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    args.backends = [b for b in args.backends.split(",") if b]

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from embedkit.paths import cache_dir

    PEER_WORK = args.peer_work or str(cache_dir() / "st-peers")
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
    started = time.perf_counter()
    auto = None
    if "auto" in args.backends:  # calibrates now (once per CPU and model, cached), outside every timing
        from embedkit.encoding.auto import resolve_backend

        auto = resolve_backend(model, "auto", args.device)
        print(f"backend auto picks {auto} on this CPU", flush=True)
    records = quality(args, model) if args.quality else speed(args, model)
    if args.record:
        from embedkit.encoding.auto import calibration_record
        from embedkit.records import make_record, write_record

        details = {"auto_backend": auto, "auto_calibration": calibration_record(model, args.device) if auto else None,
                   "peer_packages": peer_versions() if any(is_peer(m) for m in args.backends) else {},
                   "limit": args.limit, "data": args.data, "repeats": args.repeats, "batch_sizes": args.batch_sizes,
                   "retry_loaded": args.retry_loaded, "static_model": args.static_model}
        write_record(args.record, make_record("encode-quality" if args.quality else "encode-speed", {"rows": records},
                                              ["benchmarks/encode_bench.py", *sys.argv[1:]],
                                              time.perf_counter() - started, details=details))
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps({"benchmark": "encode", "quality" if args.quality else "speed": True,
                                    "argv": sys.argv[1:], **r}) + "\n")


if __name__ == "__main__":
    main()
