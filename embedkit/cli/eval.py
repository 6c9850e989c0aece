"""``embedkit eval sts|retrieval``: a readable table, then one JSON line with the metrics (x100)."""
from __future__ import annotations

import argparse

from embedkit.cli.common import add_model_args, print_json_line, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a model (STS, retrieval)")
    groups = p.add_subparsers(dest="eval_command", required=True, metavar="KIND")

    sts = groups.add_parser("sts", help="Spearman/Pearson of cosine similarity on an STS dataset")
    add_model_args(sts)
    sts.add_argument("--data", required=True, help="STS-B file or folder, SICK file, SentEval STS folder, CSV/TSV/JSONL")
    sts.add_argument("--split", default="test", help="split for folders and SICK.txt (default test)")
    sts.set_defaults(func=run_sts)

    ret = groups.add_parser("retrieval", help="nDCG@10, MRR@10, MAP@10, Recall@10/100 on a BEIR folder")
    add_model_args(ret)
    ret.add_argument("--data", required=True, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)")
    ret.add_argument("--split", default="test", help="qrels split (default test)")
    ret.set_defaults(func=run_retrieval)


def run_sts(args: argparse.Namespace) -> int:
    from embedkit.data import load_sts
    from embedkit.evaluation import evaluate_sts
    from embedkit.models import load_model

    dataset = load_sts(args.data, split=args.split)
    model = load_model(args.model, device=args.device)
    result = evaluate_sts(model, dataset, split=args.split, batch_size=args.batch_size, device=args.device)
    rows = [(name, r["spearman"], r["pearson"], r["n_pairs"]) for name, r in (result.get("subsets") or {}).items()]
    rows.append(("all" if rows else dataset.name, result["spearman"], result["pearson"], result["n_pairs"]))
    print_table(rows, ("dataset", "spearman", "pearson", "pairs"))
    print_json_line(result)
    return 0


def run_retrieval(args: argparse.Namespace) -> int:
    from embedkit.data import load_beir
    from embedkit.evaluation import evaluate_retrieval
    from embedkit.models import load_model

    dataset = load_beir(args.data, split=args.split)
    model = load_model(args.model, device=args.device)
    result = evaluate_retrieval(model, dataset, batch_size=args.batch_size, device=args.device,
                                query_prompt=args.query_prompt, document_prompt=args.document_prompt)
    print_table([(k, v) for k, v in result.items() if k != "n_queries"] + [("queries", result["n_queries"])],
                ("metric", "value"))
    print_json_line(result)
    return 0
