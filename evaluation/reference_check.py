"""The harness against published figures: the default model (and BM25, and the dense + BM25 hybrid) on
STS-B test and SciFact test, one record per task, for the README's reference table.

    python evaluation/reference_check.py --out results/evaluation

This is not a choice made on test: nothing is tuned, it checks that embedkit's evaluation reproduces the
published scores of an untouched model and of BM25. ``--split`` exists for the dev figures.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from embedkit.records import make_record, write_record

# Published scores (x100): all-MiniLM-L6-v2 on MTEB's STSBenchmark and SciFact, and bm25s's SciFact nDCG@10.
PUBLISHED = {"stsb-test": {"spearman": 82.03}, "scifact-test": {"ndcg@10": 64.51, "recall@100": 92.50},
             "scifact-test-bm25": {"ndcg@10": 67.89}}


def main(argv: list[str] | None = None) -> int:
    from embedkit.data import load_beir, load_sts
    from embedkit.evaluation import evaluate_retrieval, evaluate_sts
    from embedkit.models import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the records")
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "evaluation/reference_check.py", *(argv if argv is not None else sys.argv[1:])])
    model = load_model("default")
    runs = [(f"stsb-{args.split}", lambda: evaluate_sts(model, load_sts("stsb", split=args.split), split=args.split))]
    scifact = load_beir("scifact", split=args.split)
    for index in (None, "bm25", "hybrid"):
        name = f"scifact-{args.split}" + (f"-{index}" if index else "")
        runs.append((name, lambda index=index: evaluate_retrieval(model, scifact, index=index)))
    for name, run in runs:
        started = time.perf_counter()
        metrics = {k: v for k, v in run().items() if isinstance(v, (int, float))}
        record = make_record(f"reference-{name}", metrics, command, time.perf_counter() - started,
                             details={"published": PUBLISHED.get(name, {}), "model": "default (all-MiniLM-L6-v2)"})
        write_record(Path(args.out) / f"reference-{name}.json", record)
        print(name, {k: round(v, 2) for k, v in metrics.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
