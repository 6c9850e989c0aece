"""``embedkit train RECIPE.yaml [--set key=value ...] [--out DIR] [--resume] [--check]``."""
from __future__ import annotations

import argparse
import os
import shlex
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train an embedding model from a recipe (see training/README.md)")
    p.add_argument("recipe", help="recipe YAML file, e.g. training/simcse-unsup.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe field, nested with dots (loss.temperature=0.05, max_steps=8); "
                        "the value is read as YAML; repeatable")
    p.add_argument("--out", default=None, help="output folder (default: runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint in --out")
    p.add_argument("--record", default=None, metavar="PATH",
                   help="write the run's record here (resolved recipe, before/after metrics, train time, commit, "
                        "packages, CPU; see results/README.md); default: OUT/record.json")
    p.add_argument("--check", action="store_true",
                   help="validate the recipe and read its data, print the resolved recipe, train nothing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from embedkit.training import load_recipe, run_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    if args.check:
        from embedkit.training.datasets import load_training_data
        from embedkit.training.evaluation import load_eval_sets
        from embedkit.training.runners import get_runner, validate_params

        read_data = get_runner(recipe.method).read_data  # a method whose training rows it reads itself
        if read_data is not None:
            rows, sets = read_data(recipe, validate_params(recipe))
        else:
            rows = len(next(iter(load_training_data(recipe.data).columns.values())))
            sets = len(load_eval_sets(recipe.eval, seed=recipe.seed))
        print(recipe.to_yaml(), end="")
        print(f"# ok: {rows} training examples, {sets} evaluation set(s)")
        return 0
    out = Path(args.out) if args.out else Path("runs") / recipe.name
    started, load_before = time.perf_counter(), os.getloadavg()
    result = run_recipe(recipe, out, resume=args.resume)
    if result.after:
        from embedkit.training.result import results_table

        print(results_table(result))
    if os.environ.get("RANK", "0") == "0":  # under torchrun only the first process saved anything
        from embedkit.training.result import write_training_record

        record = write_training_record(result, args.record or out / "record.json",
                                       command_line(args), time.perf_counter() - started,
                                       details={"load_average_1m": {"start": load_before[0],
                                                                    "end": os.getloadavg()[0]}})
        print(f"saved to {out} ({result.steps} steps, {result.train_seconds:.0f} s of training); record {record}")
    return 0


def command_line(args: argparse.Namespace) -> str:
    """The ``embedkit train`` command that reproduces this run, as the record quotes it."""
    words = ["embedkit", "train", args.recipe]
    for item in args.overrides:
        words += ["--set", item]
    words += ["--out", str(args.out)] if args.out else []
    words += ["--resume"] if args.resume else []
    return shlex.join(words)
