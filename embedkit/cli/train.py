"""``embedkit train RECIPE.yaml [--set key=value ...] [--out DIR] [--resume] [--check] [--no-eval]``.

Before training it prints what the recipe's evaluations will encode, which on a CPU can take longer than a
short run's training; ``--no-eval`` leaves them out (smoke runs).
"""
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
    p.add_argument("--no-eval", action="store_true",
                   help="score none of the recipe's evaluation sets (eval.sets; moe: the domains' evaluations), "
                        "before, during or after training (what they cost is printed before training otherwise): for "
                        "smoke runs; the model is trained and saved as usual")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from embedkit.training import load_recipe, run_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    if args.no_eval:
        recipe = without_evaluation(recipe)
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
    if os.environ.get("RANK", "0") == "0":
        print(evaluation_cost(recipe), flush=True)
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


def without_evaluation(recipe):
    """``recipe`` with nothing to evaluate: no evaluation sets (nor, for ``moe``, domain evaluations)."""
    emptied = {name: [] for name in ("sets", "test_sets") if name in type(recipe.eval).model_fields}
    update = {"eval": recipe.eval.model_copy(update={**emptied, "before": False})}
    if isinstance(recipe.params.get("domains"), list):  # moe: each domain names its own evaluation
        update["params"] = {**recipe.params, "domains": [{**d, "eval": None, "test": None} if isinstance(d, dict) else d
                                                         for d in recipe.params["domains"]]}
    return recipe.model_copy(update=update)


def _evaluated(recipe) -> list[tuple[str, int, bool]]:
    """(name, texts encoded per evaluation, also during training) for every set the run will score."""
    from embedkit.training.evaluation import load_eval_sets
    from embedkit.training.runners import validate_params

    if recipe.method == "moe":
        from embedkit.training.moe import load_domain_evals

        sets = [(s.name, s.dataset, not s.final_only) for s in
                load_domain_evals(validate_params(recipe).active(), seed=recipe.seed, final=recipe.eval.final)]
    else:
        sets = [(s.name, s.dataset, s.spec.during) for s in load_eval_sets(recipe.eval, seed=recipe.seed)]
    return [(name, _texts(dataset), during) for name, dataset, during in sets]


def _texts(dataset) -> int:
    from embedkit.data import BEIRDataset, STSDataset

    if isinstance(dataset, BEIRDataset):
        return len(dataset.corpus) + len(dataset.queries)
    if isinstance(dataset, STSDataset):
        return 2 * len(dataset.pairs)
    return 3 * len(dataset)  # moe's triplets


def evaluation_cost(recipe) -> str:
    """One line: what the run's evaluations will encode, and how to skip them. An upper bound: a method may
    score a sample of a set (grace), and the base model's embeddings may be cached."""
    sets = _evaluated(recipe)
    if not sets:
        return "evaluation: none"
    steps = recipe.eval.steps
    during_runs = (recipe.max_steps // steps if recipe.max_steps else None) if steps else 0
    runs_before_after = 1 + bool(recipe.eval.before)
    total = sum(n * runs_before_after + (n * during_runs if during and during_runs else 0) for _, n, during in sets)
    when = ("before and after training" if recipe.eval.before else "after training") + (
        f", and every {steps} steps" if steps and any(d for _, _, d in sets) else "")
    listed = ", ".join(f"{name} {n:,} texts" for name, n, _ in sets)
    unknown = " (plus every evaluation during training)" if during_runs is None and any(d for _, _, d in sets) else ""
    return (f"evaluation {when}: {listed}; up to {total:,} texts to encode in all{unknown} (the base model's may "
            "be in the embedding cache). --no-eval skips them")


def command_line(args: argparse.Namespace) -> str:
    """The ``embedkit train`` command that reproduces this run, as the record quotes it."""
    words = ["embedkit", "train", args.recipe]
    for item in args.overrides:
        words += ["--set", item]
    words += ["--out", str(args.out)] if args.out else []
    words += ["--resume"] if args.resume else []
    words += ["--no-eval"] if args.no_eval else []
    return shlex.join(words)
