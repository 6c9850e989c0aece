"""``embedkit eval sts|retrieval``: a readable table, then one JSON line with the metrics (x100)."""
from __future__ import annotations

import argparse

from contextlib import ExitStack

from embedkit.cli.common import DATA_PATHS, add_model_args, load_routed_model, print_json_line, print_table
from embedkit.cli.distributed import add_ray_args, check_ray_args, documents_on_ray
from embedkit.cli.suite import add_suite_parser


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a model (STS, retrieval)")
    groups = p.add_subparsers(dest="eval_command", required=True, metavar="KIND")

    sts = groups.add_parser("sts", help="Spearman/Pearson of cosine similarity on an STS dataset")
    add_model_args(sts)
    sts.add_argument("--data", required=True,
                     help=f"STS-B file or folder, SICK file, SentEval STS folder, CSV/TSV/JSONL; {DATA_PATHS}")
    sts.add_argument("--split", default="test", help="split for folders and SICK.txt (default test)")
    sts.set_defaults(func=run_sts)

    ret = groups.add_parser("retrieval", help="nDCG@10, MRR@10, MAP@10, Recall@10/100 on a BEIR folder")
    add_model_args(ret)
    ret.add_argument("--data", required=True,
                     help=f"BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv); {DATA_PATHS}")
    ret.add_argument("--split", default="test", help="qrels split (default test)")
    ret.add_argument("--index", default=None, metavar="SPEC",
                     help="search through an index: a FAISS spec (Flat, HNSW32, IVF256,Flat, IVF256,PQ16, SQ8, "
                          "BFlat+rescore, ...: see index build --spec), "
                          "bm25, or hybrid (dense + BM25, reciprocal rank fusion); default: mteb's exact search")
    ret.add_argument("--tune-recall", type=float, default=None, metavar="R",
                     help="with a FAISS spec: tune nprobe/efSearch to this recall@10 against exact search first")
    add_ray_args(ret, encode_options=False)
    ret.set_defaults(func=run_retrieval)

    add_suite_parser(groups)


def run_sts(args: argparse.Namespace) -> int:
    from embedkit.data import load_sts
    from embedkit.evaluation import evaluate_sts

    dataset = load_sts(args.data, split=args.split)
    with ExitStack() as stack:
        model = load_routed_model(args, stack)
        result = evaluate_sts(model, dataset, split=args.split, batch_size=args.batch_size, device=args.device)
    rows = [(name, r["spearman"], r["pearson"], r["n_pairs"]) for name, r in (result.get("subsets") or {}).items()]
    rows.append(("all" if rows else dataset.name, result["spearman"], result["pearson"], result["n_pairs"]))
    print_table(rows, ("dataset", "spearman", "pearson", "pairs"))
    print_json_line(result)
    return 0


def run_retrieval(args: argparse.Namespace) -> int:
    from embedkit.data import load_beir
    from embedkit.evaluation import evaluate_retrieval

    check_ray_args(args)
    dataset = load_beir(args.data, split=args.split)
    with ExitStack() as stack:
        model = load_routed_model(args, stack)
        documents = documents_on_ray(args, dataset, model) if args.ray is not None else None
        result = evaluate_retrieval(model, dataset, batch_size=args.batch_size, device=args.device,
                                    query_prompt=args.query_prompt, document_prompt=args.document_prompt,
                                    index=args.index, tune_recall=args.tune_recall, document_embeddings=documents)
    rows = [(k, v) for k, v in result.items() if isinstance(v, float)]
    print_table(rows + [("queries", result["n_queries"]), ("search", args.index or "exact (mteb)")], ("metric", "value"))
    print_json_line(result)
    return 0
