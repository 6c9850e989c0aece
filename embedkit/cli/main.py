"""Entry point: parse arguments, dispatch, and turn embedkit errors into one line and exit code 2.

Every command module exposes ``register(subparsers)``, which adds its parser(s) and sets
``func`` (called with the parsed ``argparse.Namespace``, returns an exit code or None).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from embedkit.errors import EmbedkitError

COMMAND_MODULES = ["encode", "eval", "cache", "data", "demo", "train", "mine", "report", "index", "generate",
                   "distill", "info", "serve"]
# What a shell reports for a process ended by SIGPIPE (128 + 13): `embedkit ... | head -1` ends like `yes | head -1`.
EXIT_BROKEN_PIPE = 141


def build_parser() -> argparse.ArgumentParser:
    from embedkit import __version__

    parser = argparse.ArgumentParser(prog="embedkit", description="Train, index and evaluate embedding models.")
    parser.add_argument("--version", action="version", version=f"embedkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"embedkit.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        _check_models(args)
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a reader that went away shows up here when the output was buffered
        return code
    except EmbedkitError as exc:
        print(f"embedkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("embedkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE


def _check_models(args: argparse.Namespace) -> None:
    """A ``--model`` that cannot load (see :func:`embedkit.cli.common.check_model_first`) fails now, in a
    fraction of a second, not after the command has imported torch and read its data."""
    from embedkit.models import check_model

    if not getattr(args, "check_model_first", False):
        return
    models = args.model
    for model in models if isinstance(models, list) else [models]:
        check_model(model)


def _discard_stdout() -> None:
    """The reader of stdout is gone (``| head -1``): point stdout at /dev/null so that the interpreter's
    final flush does not raise again and print a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured in tests): nothing to redirect
        pass


if __name__ == "__main__":
    sys.exit(main())
