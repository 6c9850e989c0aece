"""``embedkit report RESULTS_DIR [--out report.md]``: the comparison table (Markdown) and a PNG chart beside it."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from embedkit.cli.common import print_json_line


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="compare models: Markdown table + PNG chart from a results folder")
    p.add_argument("results_dir", help="a folder written by `embedkit eval suite` (or any mteb results folder)")
    p.add_argument("--out", default=None, help="Markdown file (default RESULTS_DIR/report.md); the PNG goes beside it")
    p.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                   help="columns to show, in order, the first being the baseline: a model name, name@revision "
                        "or revision prefix (default: all, in the order they were first evaluated)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from embedkit.evaluation.report import render_table, write_report

    command = shlex.join(["embedkit", *sys.argv[1:]]) if Path(sys.argv[0]).name == "embedkit" else None
    md_path, png_path, report = write_report(args.results_dir, args.out, args.models, command=command)
    print(render_table(report))
    print(f"\nreport: {md_path}\nchart:  {png_path}")
    print_json_line({"report": str(md_path), "chart": str(png_path), "models": [c.header for c in report.columns],
                     "tasks": [r.label for r in report.rows]})
    return 0
