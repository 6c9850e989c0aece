"""``embedkit eval suite SUITE.yaml --model A [--model B ...] [--out DIR]``: run a suite, resumably.

Prints one line per task as it finishes, then a table (tasks x models, main scores x100) and, last,
one JSON line. Exit status 2 when any task failed (each failure is one ``embedkit: error:`` line on
stderr; the other tasks still ran).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from embedkit.cli.common import DATA_PATHS, check_model_first, print_json_line, print_table

DEFAULT_OUT = Path("results")


def add_suite_parser(groups: argparse._SubParsersAction) -> None:
    p = groups.add_parser("suite", help="run an evaluation suite (YAML) for one or more models through mteb")
    p.add_argument("suite", help="suite file, e.g. evaluation/quick.yaml; its tasks' data paths: " + DATA_PATHS)
    p.add_argument("--model", action="append", default=None,
                   help="'default', a model folder or a hub id; repeat to compare models (default: default)")
    p.add_argument("--out", default=None,
                   help=f"results folder (default {DEFAULT_OUT}/<suite name>); finished tasks there are not re-run")
    p.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default 32)")
    p.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda (default: best available)")
    p.add_argument("--rerun", action="store_true", help="run every task again, even those with a finished result")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    check_model_first(p)


def run(args: argparse.Namespace) -> int:
    from embedkit.evaluation.suite import load_suite
    from embedkit.evaluation.suite_runner import run_suite

    suite = load_suite(args.suite)
    models = args.model or ["default"]
    out = Path(args.out) if args.out else DEFAULT_OUT / suite.name
    command = ["embedkit", *sys.argv[1:]] if Path(sys.argv[0]).name == "embedkit" else list(sys.argv)
    result = run_suite(suite, models, out, batch_size=args.batch_size, device=args.device, rerun=args.rerun,
                       command=command, show_progress=not args.no_progress)

    columns = list(dict.fromkeys(o.model for o in result.outcomes))
    rows: dict[str, dict[str, str]] = {}
    for o in result.outcomes:
        rows.setdefault(o.label, {})[o.model] = "failed" if o.score is None else f"{100 * o.score:.2f}"
    print()
    print_table([(label, *(cells.get(m, "-") for m in columns)) for label, cells in rows.items()],
                ("task", *columns))
    print(f"\nresults: {out}   report: embedkit report {shlex.quote(str(out))}")
    print_json_line({
        "suite": suite.name, "results_dir": str(out),
        "scores": {m: {o.label: (None if o.score is None else round(100 * o.score, 4))
                       for o in result.outcomes if o.model == m} for m in columns},
        "ran": sum(o.status == "ran" for o in result.outcomes),
        "done_before": sum(o.status == "done before" for o in result.outcomes),
        "failed": list(dict.fromkeys(o.label for o in result.failed)),
    })
    return 2 if result.failed else 0
