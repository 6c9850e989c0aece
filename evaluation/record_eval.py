"""Evaluate a model on named tasks and write one record per task (the figures documents quote).

    # the harness against published figures: the default model, BM25 and the hybrid on the test sets
    python evaluation/record_eval.py --tasks stsb-test,scifact-test,scifact-test-bm25,scifact-test-hybrid \
        --out results/evaluation --prefix reference
    # a trained model through the dense + BM25 hybrid (its own row beside the dense figures)
    python evaluation/record_eval.py --model runs/r-final-s42 --tasks scifact-test-hybrid \
        --out results/training/retrieval-scifact --prefix hybrid-final-s42

A task is ``stsb-<split>`` (Spearman) or ``scifact-<split>[-bm25|-hybrid]`` (nDCG@10 and the rest, exact
search unless an index is named). Scoring the default model or BM25 on test tunes nothing: it checks that
the harness reproduces published scores. A model's test figures are reported once, for its final recipe.
"""
from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
from pathlib import Path

from embedkit.records import make_record, write_record

# Published scores (x100): all-MiniLM-L6-v2 on MTEB's STSBenchmark and SciFact, and bm25s's SciFact nDCG@10.
PUBLISHED = {"stsb-test": {"spearman": 82.03}, "scifact-test": {"ndcg@10": 64.51, "recall@100": 92.50},
             "scifact-test-bm25": {"ndcg@10": 67.89}}
TASK = re.compile(r"(?P<data>stsb|scifact)-(?P<split>[\w-]+?)(?:-(?P<index>bm25|hybrid))?$")


def evaluate_task(model, task: str) -> dict:
    from embedkit.data import load_beir, load_sts
    from embedkit.evaluation import evaluate_retrieval, evaluate_sts

    match = TASK.fullmatch(task)
    if match is None:
        raise SystemExit(f"unknown task {task!r}: stsb-<split> or scifact-<split>[-bm25|-hybrid]")
    split, index = match["split"], match["index"]
    if match["data"] == "stsb":
        return evaluate_sts(model, load_sts("stsb", split=split), split=split)
    return evaluate_retrieval(model, load_beir("scifact", split=split), index=index)


def main(argv: list[str] | None = None) -> int:
    from embedkit.models import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--tasks", required=True, help="comma-separated, e.g. stsb-test,scifact-test-hybrid")
    parser.add_argument("--out", required=True, help="folder for the records")
    parser.add_argument("--prefix", required=True, help="records are named PREFIX-TASK.json")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "evaluation/record_eval.py", *(argv if argv is not None else sys.argv[1:])])
    model = load_model(args.model)
    for task in args.tasks.split(","):
        started = time.perf_counter()
        metrics = {k: v for k, v in evaluate_task(model, task).items() if isinstance(v, (int, float))}
        details = {"model": args.model}
        if args.model == "default" and task in PUBLISHED:
            details["published"] = PUBLISHED[task]
        write_record(Path(args.out) / f"{args.prefix}-{task}.json",
                     make_record(f"{args.prefix}-{task}", metrics, command, time.perf_counter() - started,
                                 details=details))
        print(task, {k: round(v, 2) for k, v in metrics.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
