"""Defaults chosen on dev sets, never on test: each subcommand measures the candidates on a dev split and
writes a record; ``results/choices/tables.py`` turns the records into the tables the documents quote.

    # HNSW's default efSearch: SciFact dev queries (170) against the full corpus, default model, k = 10
    python benchmarks/dev_choices.py hnsw --record results/choices/hnsw-efsearch-dev.json
    # the smallest onnx-int8 token limit within --slack of the exact model on SciFact dev and STS-B dev (if any)
    python benchmarks/dev_choices.py token-limit --record results/choices/onnx-int8-token-limit-dev.json

``hnsw`` builds one HNSW32 index over the corpus embeddings (the embedding cache makes them once) and, for
every efSearch FAISS can be tuned to, searches the 10 nearest abstracts of each dev query through
``FaissIndex`` (beam = max(efSearch, k)): recall@10 against exact search, nDCG@10 against the dev qrels
(pytrec_eval). Speed is index_bench.py's business (on 103k vectors). The rule it applies: the smallest efSearch whose
recall@10 against exact search is at least ``--recall`` (0.99) and whose nDCG@10 is within ``--ndcg-slack``
(0.1) of exact search's.

``token-limit`` scores the ``--backend`` (onnx-int8) with inputs cut at each ``--limits`` token count on
STS-B dev (Spearman of cosine) and SciFact dev (nDCG@10 of an exact top-10 search), beside the exact
float32 model at its full length. The rule: the smallest limit (the fastest) whose scores are both within
``--slack`` (0.5) of the exact model's. Speed per limit is encode_bench.py's business.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time

import numpy as np

from embedkit.records import make_record, write_record


def ndcg_at_10(qrels: dict, query_ids: list[str], scores: np.ndarray, found: np.ndarray) -> float:
    import pytrec_eval

    run = {q: {str(d): float(s) for d, s in zip(row_ids, row_scores) if d}
           for q, row_ids, row_scores in zip(query_ids, found, scores)}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"})
    return 100 * float(np.mean([v["ndcg_cut_10"] for v in evaluator.evaluate(run).values()]))


def embed_beir(model, data, backend: str = "torch"):
    """(document ids, document vectors, query ids, query vectors) through the embedding cache."""
    from embedkit.encoding import cached_encode
    from embedkit.training.datasets import document_text

    doc_ids, query_ids = list(data.corpus), list(data.queries)
    docs = cached_encode(model, [document_text(data.corpus[d]) for d in doc_ids], role="document", batch_size=32,
                         backend=backend)
    queries = cached_encode(model, [data.queries[q] for q in query_ids], role="query", batch_size=32,
                            backend=backend)
    return doc_ids, docs, query_ids, queries


def exact_top10(doc_ids, docs, queries):
    from embedkit.index import FaissIndex

    exact = FaissIndex(docs.shape[1], spec="Flat", metric="cosine")
    exact.add(doc_ids, docs)
    return exact.search_arrays(queries, 10)


def hnsw(args) -> dict:
    from embedkit.data import load_beir
    from embedkit.index import FaissIndex
    from embedkit.index.specs import search_knob
    from embedkit.models import load_model

    data = load_beir(args.data, split=args.split)
    doc_ids, docs, query_ids, queries = embed_beir(load_model(args.model), data)
    exact_scores, exact_labels = exact_top10(doc_ids, docs, queries)
    index = FaissIndex(docs.shape[1], spec=args.spec, metric="cosine")
    index.add(doc_ids, docs)
    rows = [{"efSearch": "exact", "recall@10_vs_exact": 1.0,
             "ndcg@10": ndcg_at_10(data.qrels, query_ids, exact_scores, exact_labels)}]
    for ef in [v for v in search_knob(index.faiss_index).candidates if v <= args.max_ef]:
        index.set_search_params(efSearch=ef)
        scores, found = index.search_arrays(queries, 10)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact_labels)])
        rows.append({"efSearch": ef, "recall@10_vs_exact": float(recall),
                     "ndcg@10": ndcg_at_10(data.qrels, query_ids, scores, found)})
    exact_ndcg = rows[0]["ndcg@10"]
    chosen = next((r["efSearch"] for r in rows[1:] if r["recall@10_vs_exact"] >= args.recall
                   and r["ndcg@10"] >= exact_ndcg - args.ndcg_slack), None)
    return {"rows": rows, "chosen_efSearch": chosen, "rule": {"recall@10_vs_exact": args.recall,
                                                              "ndcg_slack": args.ndcg_slack},
            "queries": len(query_ids), "documents": len(doc_ids), "spec": args.spec, "split": args.split}


def token_limit(args) -> dict:
    from scipy.stats import spearmanr

    from embedkit.data import load_beir, load_sts
    from embedkit.encoding import cached_encode
    from embedkit.models import load_model

    sts = load_sts("stsb", split=args.split)
    scifact = load_beir("scifact", split=args.split)

    def scores(model, backend: str) -> dict:
        a = cached_encode(model, [p.sentence1 for p in sts.pairs], batch_size=32, backend=backend)
        b = cached_encode(model, [p.sentence2 for p in sts.pairs], batch_size=32, backend=backend)
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        doc_ids, docs, query_ids, queries = embed_beir(model, scifact, backend)
        return {"stsb_spearman": 100 * float(spearmanr(cosine, [p.score for p in sts.pairs]).statistic),
                "scifact_ndcg@10": ndcg_at_10(scifact.qrels, query_ids, *exact_top10(doc_ids, docs, queries))}

    exact = {"backend": "torch", "max_seq_length": "model's own", **scores(load_model(args.model), "torch")}
    rows = [exact]
    for limit in args.limits:
        rows.append({"backend": args.backend, "max_seq_length": limit,
                     **scores(load_model(args.model, max_seq_length=limit), args.backend)})
    keeps = [r["max_seq_length"] for r in rows[1:]
             if all(r[k] >= exact[k] - args.slack for k in ("stsb_spearman", "scifact_ndcg@10"))]
    return {"rows": rows, "chosen_max_seq_length": min(keeps) if keeps else None, "rule": {"slack": args.slack},
            "split": args.split, "backend": args.backend}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    h = sub.add_parser("hnsw", help="HNSW's default efSearch on SciFact dev")
    h.add_argument("--data", default="scifact")
    h.add_argument("--split", default="dev")
    h.add_argument("--model", default="default")
    h.add_argument("--spec", default="HNSW32")
    h.add_argument("--recall", type=float, default=0.99)
    h.add_argument("--ndcg-slack", type=float, default=0.1)
    h.add_argument("--max-ef", type=int, default=256, help="largest efSearch tried")
    h.add_argument("--record", required=True)
    t = sub.add_parser("token-limit", help="the fast backend's token limit on STS-B dev and SciFact dev")
    t.add_argument("--split", default="dev")
    t.add_argument("--model", default="default")
    t.add_argument("--backend", default="onnx-int8")
    t.add_argument("--limits", default="128,160,192,208,224,256", type=lambda v: [int(x) for x in v.split(",")])
    t.add_argument("--slack", type=float, default=0.5)
    t.add_argument("--record", required=True)
    args = parser.parse_args(argv)
    if args.split == "test":
        parser.error("defaults are chosen on dev splits, not test")
    started = time.perf_counter()
    metrics = hnsw(args) if args.command == "hnsw" else token_limit(args)
    command = shlex.join(["python", "benchmarks/dev_choices.py", *(argv if argv is not None else sys.argv[1:])])
    write_record(args.record, make_record(f"dev-choice-{args.command}", metrics, command,
                                          time.perf_counter() - started))
    for row in metrics["rows"]:
        print(row)
    print("chosen:", {k: v for k, v in metrics.items() if k.startswith("chosen")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
