"""``embedkit data get NAME... [--out DIR] [--force]`` and ``embedkit data list``: the datasets the README and
the recipes use, downloaded from the Hugging Face hub into ``EMBEDKIT_DATA`` and verified (see
embedkit/data/download.py)."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from embedkit.data.catalog import CATALOG, GROUPS

    p = sub.add_parser("data", help="get the datasets the README and recipes use (EMBEDKIT_DATA)")
    actions = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    choices = ", ".join(CATALOG) + "; groups: " + ", ".join(f"{g} ({' '.join(n)})" if g != "all" else "all"
                                                           for g, n in GROUPS.items())
    get = actions.add_parser(
        "get", help="download datasets from the Hugging Face hub, verified, in the layout the loaders read",
        description="Download datasets from the Hugging Face hub into DIR/<folder> (default: EMBEDKIT_DATA) in "
                    "the layout embedkit's loaders read, check their row counts and checksums before putting them "
                    "in place, and write a README with their provenance into each folder. A folder that is already "
                    "there and verifies is kept. Offline, it says in one line where to put the files instead.")
    get.add_argument("names", nargs="+", metavar="NAME", help=f"datasets: {choices}")
    get.add_argument("--out", default=None, metavar="DIR",
                     help="the data folder to write into (default: EMBEDKIT_DATA, see `embedkit data list`)")
    get.add_argument("--force", action="store_true",
                     help="replace a folder that exists but does not verify (default: refuse)")
    get.set_defaults(func=run_get)
    actions.add_parser("list", help="the datasets `data get` knows, their folders, and which are present"
                       ).set_defaults(func=run_list)


def run_get(args: argparse.Namespace) -> int:
    from pathlib import Path

    from embedkit.data.download import get_dataset, names

    for name in names(args.names):
        outcome = get_dataset(name, Path(args.out) if args.out else None, force=args.force)
        pinned = sum(f.part.checksum is not None for f in outcome.facts)
        checks = f"{len(outcome.facts)} checks passed ({pinned} against the pinned reference checksums)"
        what = "downloaded to" if outcome.downloaded else "already present in"
        print(f"{name}: {what} {outcome.folder}; {checks}", flush=True)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from embedkit.cli.common import print_table
    from embedkit.data.catalog import CATALOG
    from embedkit.paths import data_dir, data_dir_origin

    root = data_dir()
    print(f"EMBEDKIT_DATA: {root} ({data_dir_origin()})\n")
    print_table([(s.name, s.folder, "yes" if (root / s.folder).exists() else "no", s.title) for s in CATALOG.values()],
                ("name", "folder", "present", "what"))
    print("\nGet one with `embedkit data get NAME` (needs the Hugging Face hub).")
    return 0
