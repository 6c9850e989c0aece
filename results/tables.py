"""Regenerate (or, with --check, verify) every table that documents quote from the records in results/.

Each area keeps its table builders beside its records, in ``results/<area>/tables.py``, as a mapping
``TABLES = {"name": function returning markdown}``; a document includes one between
``<!-- table: name -->`` and ``<!-- /table: name -->`` markers (see :mod:`embedkit.records`).

    python results/tables.py           # rewrite the tables in every document
    python results/tables.py --check   # exit 1, naming each table that disagrees with its records
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from embedkit.records import render_document

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ["README.md", "training/README.md", "benchmarks/README.md", "evaluation/README.md", "docs/*.md"]


def all_tables() -> dict:
    tables: dict = {}
    for module_path in sorted(Path(__file__).parent.glob("*/tables.py")):
        spec = importlib.util.spec_from_file_location(f"results_{module_path.parent.name}_tables", module_path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        clash = set(tables) & set(module.TABLES)
        if clash:
            raise SystemExit(f"{module_path}: table names already defined elsewhere: {sorted(clash)}")
        tables.update(module.TABLES)
    return tables


def documents() -> list[Path]:
    return [p for pattern in DOCUMENTS for p in sorted(ROOT.glob(pattern))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table is out of date")
    args = parser.parse_args(argv)
    tables = all_tables()
    errors: list = []
    stale = {str(doc.relative_to(ROOT)): render_document(doc, tables, check=args.check, errors=errors)
             for doc in documents()}
    stale = {doc: names for doc, names in stale.items() if names}
    for doc, names in stale.items():
        print(f"{doc}: {'out of date' if args.check else 'rewrote'}: {', '.join(names)}")
    for error in errors:  # the other tables are rendered; these are left as they are
        print(f"error: {error}", file=sys.stderr)
    return 2 if errors else 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
