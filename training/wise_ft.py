"""Choose the WiSE-FT alpha of a finished run on its dev sets and write the record.

    python training/wise_ft.py runs/retrieval-scifact --alphas 0.5,0.7,0.8,0.9,1 \
        --record results/training/retrieval-scifact/wise-ft-s42.json

Each alpha interpolates the run's base model with its trained weights (embedkit.training.interpolation)
and scores the recipe's selection sets (eval.sets: dev). The chosen alpha goes into the recipe as
``wise_ft_alpha``; the final run (``--set eval.final=true``) then reports test once.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time

import yaml

from embedkit.records import make_record, write_record
from embedkit.training.interpolation import evaluate_alphas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a folder written by embedkit train (recipe.yaml, model)")
    parser.add_argument("--alphas", required=True, help="comma-separated, e.g. 0.5,0.7,0.9,1")
    parser.add_argument("--record", required=True, help="where to write the record")
    args = parser.parse_args(argv)
    alphas = [float(a) for a in args.alphas.split(",")]
    started = time.perf_counter()
    results = evaluate_alphas(args.run, alphas)
    with open(f"{args.run}/recipe.yaml", encoding="utf-8") as f:
        recipe = yaml.safe_load(f)
    command = shlex.join(["python", "training/wise_ft.py", *(argv if argv is not None else sys.argv[1:])])
    write_record(args.record, make_record(f"wise-ft-{recipe['name']}", {"alphas": results}, command,
                                          time.perf_counter() - started, recipe=recipe))
    for alpha, metrics in results.items():
        print(alpha, {name: {k: round(v, 2) for k, v in m.items() if k in ("spearman", "ndcg@10")}
                      for name, m in metrics.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
