"""Smaller indexes at the same quality: truncated dimensions (``--dim``) x float32 / int8 / binary / binary +
rescore, and their search speed against raw FAISS doing the same. Writes records under results/quantization/.

``quality``: SciFact nDCG@10 and bytes per vector for a model (``--model``: the default model, or a trained
model's folder) at each width in ``--dims`` and each spec, on ``--split test`` (the reported figures) or
``--split dev`` (SciFact ``dev``, STS-B dev: what recipe choices are made on), scored by mteb through embedkit's index layer (:class:`embedkit.evaluation.search.IndexSearch`,
what ``eval retrieval --index SPEC`` runs). The corpus and queries are encoded once at full width, through
the embedding cache, and cut to each width (first d dimensions, renormalised: what ``--dim d`` gives).
STS-B test Spearman at each width is mteb's STS evaluator over the STS-B test sentences encoded once and
cut the same way (what ``eval sts --dim d`` computes; tests/index/test_dim.py checks that cutting
precomputed vectors equals encoding with ``dim=d``). ``--max-seq-length N`` cuts documents at N tokens
(default: the model's 256) for a cheaper run; the record says so. ``--record PATH`` names the record
(default: ``scifact-dims[-msl N].json`` for the default model on test).

``speed``: queries per second on ``--limit`` real vectors (the bench sentences of ``index_bench.py``,
encoded once through the cache; the first ``--queries`` are the queries; or, with ``--scifact-copies N``,
the SciFact corpus vectors of a ``quality`` run plus N perturbed copies of each, labelled as such in the
record, with SciFact claims as queries) for Flat, SQ8, BFlat and the
binary +rescore specs, each through embedkit (saved, loaded back, rescore rows memory-mapped from disk) and
through raw FAISS calls doing the same (``IndexFlatIP``, ``IndexScalarQuantizer`` QT_8bit, ``IndexBinaryFlat``
over ``np.packbits``, and for rescoring the binary top ``4 x k`` rescored in numpy from an ``np.load``
memory map), interleaved, one FAISS thread, with recall@10 against exact search.

    EMBEDKIT_CACHE=/work/cache HF_HUB_OFFLINE=1 PYTHONPATH=. python benchmarks/quantization_bench.py quality
    ... quantization_bench.py quality --model models/matryoshka --split dev --record results/quantization/x.json
    EMBEDKIT_CACHE=/work/cache HF_HUB_OFFLINE=1 PYTHONPATH=. python benchmarks/quantization_bench.py speed --limit 101000
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import describe_load, interleaved, median  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "quantization"
KINDS = {"float32": "Flat", "int8": "SQ8", "binary": "BFlat", "binary+rescore": "BFlat+rescore",
         "binary+rescore-int8": "BFlat+rescore-int8"}
K = 10


def quality(args) -> None:
    from embedkit.data import load_beir, load_sts
    from embedkit.evaluation.encoder import MtebEncoder
    from embedkit.evaluation.search import IndexSearch
    from embedkit.evaluation.sts import _run as run_sts
    from embedkit.evaluation.tasks import retrieval_task
    from embedkit.index.build import truncate_embeddings
    from embedkit.models import load_model
    from embedkit.paths import data_dir
    from embedkit.records import recording

    class TruncatedSearch(IndexSearch):
        """``eval retrieval --index SPEC`` over full-width vectors cut to ``dim`` (encoded once, cached)."""

        def __init__(self, encoder, spec, dim):
            super().__init__(encoder, spec)
            self.dim = dim

        def _encode(self, *a, **kw):
            return truncate_embeddings(super()._encode(*a, **kw), self.dim)

    class TruncatedEncoder(MtebEncoder):
        """The STS encoder over full-width vectors cut to ``dim``."""

        dim = None

        def encode(self, *a, **kw):
            return truncate_embeddings(super().encode(*a, **kw), self.dim)

    model = load_model(args.model, device="cpu", max_seq_length=args.max_seq_length)
    dataset = load_beir(data_dir() / "scifact", split=args.split)
    sts = load_sts(data_dir() / "stsb", split=args.split)
    encoder = MtebEncoder(model, batch_size=32, show_progress=True)
    sts_encoder = TruncatedEncoder(load_model(args.model, device="cpu"), batch_size=32, show_progress=False)
    task = retrieval_task(dataset)
    suffix = f"-msl{args.max_seq_length}" if args.max_seq_length else ""
    path = Path(args.record) if args.record else OUT / f"scifact-dims{suffix}.json"
    with recording(path, "quantization-scifact-dims", sys.argv) as rec:
        rows = []
        for dim in args.dims:
            sts_encoder.dim = dim
            spearman = run_sts(sts_encoder, sts, args.split, None)["spearman"]
            for kind, spec in KINDS.items():
                if "B" in spec and dim % 8:
                    continue
                searcher = TruncatedSearch(encoder, spec, dim)
                t0 = time.perf_counter()
                scores = task.evaluate(searcher, dataset.split, encode_kwargs={"batch_size": 32})["default"]
                memory = searcher.dense.memory()
                rows.append({"model": args.model, "dim": dim, "kind": kind, "spec": spec,
                             "ndcg_at_10": 100 * scores["ndcg_at_10"], "recall_at_100": 100 * scores["recall_at_100"],
                             "recall_at_10_vs_exact": 100 * searcher.recall_vs_exact, "memory": memory,
                             f"stsb_{args.split}_spearman": spearman, "seconds": round(time.perf_counter() - t0, 1)})
                print(rows[-1], flush=True)
        rec.metrics["rows"] = rows
        rec.details.update({"dataset": f"SciFact {args.split} ({len(dataset.queries)} queries, "
                                       f"{len(dataset.corpus):,} documents); STS-B {args.split}",
                            "split": args.split,
                            "model": ("default (all-MiniLM-L6-v2), not fine-tuned" if args.model == "default"
                                      else args.model),
                            "model_fingerprint": encoder.fingerprint,
                            "max_seq_length": model.max_seq_length,
                            "encoding": "once at 384 dims through the embedding cache, then cut and renormalised",
                            "rescore_factor": 4})


def _pack(x: np.ndarray) -> np.ndarray:
    return np.packbits(x > 0, axis=1)


def speed(args) -> None:
    import faiss

    started = time.perf_counter()

    from embedkit.index import FaissIndex, build_from_vectors
    from embedkit.records import make_record, write_record
    from index_bench import load_vectors

    faiss.omp_set_num_threads(1)
    if args.scifact_copies:
        queries, db, source = scifact_vectors(args)
    else:
        vectors = load_vectors(args.limit, 64)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        queries, db = vectors[:args.queries], np.ascontiguousarray(vectors[args.queries:])
        source = "bench sentences (benchmarks/bench_sentences.py) encoded by all-MiniLM-L6-v2"
    d, ids = db.shape[1], [str(i) for i in range(len(db))]
    exact = np.argsort(-(queries @ db.T), axis=1)[:, :K]
    tmp = Path(tempfile.mkdtemp(prefix="quant-bench-"))

    # raw FAISS doing the same
    flat = faiss.IndexFlatIP(d)
    flat.add(db)
    sq = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    sq.train(db)
    sq.add(db)
    binary = faiss.IndexBinaryFlat(d)
    binary.add(_pack(db))
    np.save(tmp / "rows.npy", db)
    rows = np.load(tmp / "rows.npy", mmap_mode="r")

    def raw_rescore(q: np.ndarray) -> np.ndarray:
        _, cand = binary.search(_pack(q), 4 * K)
        cand_rows = np.asarray(rows[cand.ravel()]).reshape(cand.shape + (d,))
        scores = np.einsum("qd,qcd->qc", q, cand_rows)
        return np.take_along_axis(cand, np.argsort(-scores, axis=1)[:, :K], axis=1)

    raw = {"Flat": lambda q: flat.search(q, K)[1], "SQ8": lambda q: sq.search(q, K)[1],
           "BFlat": lambda q: binary.search(_pack(q), K)[1], "BFlat+rescore": raw_rescore}

    layers = {}
    for spec in KINDS.values():
        index = build_from_vectors(ids, db, spec, "cosine", show_progress=False)
        index.save(tmp / spec)
        layers[spec] = FaissIndex.load(tmp / spec)  # rescore rows memory-mapped from the saved file
        del index

    def layer_labels(index, q):
        return index.search_arrays(q, K)[1].astype(np.int64)

    candidates, results = {}, {}
    one = queries[:args.single]
    for spec, index in layers.items():
        candidates[f"embedkit {spec} batch"] = lambda index=index: layer_labels(index, queries)
        candidates[f"embedkit {spec} single"] = lambda index=index: [index.search_arrays(q[None], K) for q in one]
        if spec in raw:
            candidates[f"faiss {spec} batch"] = lambda fn=raw[spec]: fn(queries)
            candidates[f"faiss {spec} single"] = lambda fn=raw[spec]: [fn(q[None]) for q in one]
    runs = interleaved(candidates, args.repeats)
    for spec, index in layers.items():
        found = layer_labels(index, queries)
        recall = float(np.mean([len(set(f) & set(e)) / K for f, e in zip(found, exact)]))
        row = {"spec": spec, "recall_at_10": recall, "memory": index.memory(),
               "embedkit_batch_qps": len(queries) / median([r.seconds for r in runs[f"embedkit {spec} batch"]]),
               "embedkit_single_qps": len(one) / median([r.seconds for r in runs[f"embedkit {spec} single"]])}
        if spec in raw:
            raw_found = raw[spec](queries)
            row.update({"faiss_recall_at_10": float(np.mean([len(set(f) & set(e)) / K
                                                              for f, e in zip(raw_found, exact)])),
                        "faiss_batch_qps": len(queries) / median([r.seconds for r in runs[f"faiss {spec} batch"]]),
                        "faiss_single_qps": len(one) / median([r.seconds for r in runs[f"faiss {spec} single"]])})
        results[spec] = row
        print(row, flush=True)
    all_runs = [r for rs in runs.values() for r in rs]
    details = {"vectors": len(db), "queries": len(queries), "single_queries": len(one), "dim": d,
               "repeats": args.repeats, "faiss_threads": 1, "k": K, "rescore_factor": 4,
               "load": describe_load(all_runs), "data": source}
    # the wall time covers the whole run (encoding included), not only the writing of the record
    write_record(OUT / f"speed-{len(db)}.json", make_record("quantization-speed", {"rows": list(results.values())},
                                                            sys.argv, time.perf_counter() - started, details=details))


def scifact_vectors(args) -> tuple[np.ndarray, np.ndarray, str]:
    """SciFact corpus vectors (from the embedding cache a ``quality`` run filled) plus ``scifact_copies``
    perturbed copies of each (Gaussian noise of 0.3 x the per-dimension spread, renormalised), and SciFact
    claims as queries."""
    from embedkit.data import load_beir
    from embedkit.encoding import cached_encode
    from embedkit.data import full_text
    from embedkit.models import load_model
    from embedkit.paths import data_dir

    model = load_model("default", device="cpu", max_seq_length=args.max_seq_length)
    data = load_beir(data_dir() / "scifact", split="train")
    docs = list(data.corpus.values())
    real = cached_encode(model, [full_text(d.title, d.text) for d in docs], role="document")
    claims = list(data.queries.values())[:args.queries]
    queries = cached_encode(model, claims, role="query")
    rng = np.random.default_rng(0)
    noise = 0.3 * real.std(axis=0)
    copies = [real + noise * rng.standard_normal(real.shape).astype(np.float32) for _ in range(args.scifact_copies)]
    db = np.concatenate([real] + copies)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    return queries, np.ascontiguousarray(db, dtype=np.float32), (
        f"{len(real):,} SciFact corpus vectors (all-MiniLM-L6-v2, documents cut at "
        f"{model.max_seq_length} tokens) plus {args.scifact_copies} perturbed copies of each (Gaussian noise, "
        f"0.3 x each dimension's spread, renormalised): {len(db):,} vectors, {len(real):,} of them real; "
        f"queries: {len(queries)} SciFact claims")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--dims", type=int, nargs="+", default=[384, 256, 128, 64])
    q.add_argument("--max-seq-length", type=int, default=None, help="cut documents at this many tokens")
    q.add_argument("--model", default="default", help="the default model, or a trained model's folder")
    q.add_argument("--split", choices=["dev", "test"], default="test",
                   help="dev: SciFact dev and STS-B dev, for choices; test: the reported figures")
    q.add_argument("--record", default=None, help="record path (default: results/quantization/scifact-dims*.json)")
    s = sub.add_parser("speed")
    s.add_argument("--limit", type=int, default=101000, help="sentences: queries + database vectors")
    s.add_argument("--queries", type=int, default=1000)
    s.add_argument("--single", type=int, default=200, help="queries searched one at a time")
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--scifact-copies", type=int, default=0,
                   help="instead of the bench sentences: SciFact corpus vectors plus this many perturbed copies")
    s.add_argument("--max-seq-length", type=int, default=None, help="with --scifact-copies: as the quality run")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    quality(args) if args.command == "quality" else speed(args)


if __name__ == "__main__":
    main()
