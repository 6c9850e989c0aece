"""Entry point: parse arguments, dispatch, and turn embedkit errors into one line and exit code 2.

Every command module exposes ``register(subparsers)``, which adds its parser(s) and sets
``func`` (called with the parsed ``argparse.Namespace``, returns an exit code or None).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from embedkit.errors import EmbedkitError

COMMAND_MODULES = ["encode", "eval", "cache", "demo", "train", "mine", "report", "index", "generate", "distill", "info"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="embedkit", description="Train, index and evaluate embedding models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"embedkit.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EmbedkitError as exc:
        print(f"embedkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("embedkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
