"""Arguments shared by every command that encodes."""
from __future__ import annotations

import argparse

# Said by every option that takes a data path (see embedkit/paths.py).
DATA_PATHS = ("a relative path is looked up in the working directory, then in EMBEDKIT_DATA (default: ../shared/data "
              "beside the embedkit checkout, whatever the working directory; `embedkit data list` shows it)")


def check_model_first(parser: argparse.ArgumentParser) -> None:
    """Mark ``parser``'s ``--model`` (one name or a list) as an embedding model that embedkit.cli.main checks
    before the command runs (embedkit.models.check_model: a mistyped folder, an offline hub id)."""
    parser.set_defaults(check_model_first=True)


def add_model_args(parser: argparse.ArgumentParser, model_required: bool = False) -> None:
    check_model_first(parser)
    parser.add_argument("--model", default=None if model_required else "default", required=model_required,
                        help="'default' (packaged all-MiniLM-L6-v2), a local model folder, or a hub id")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default 32)")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda, cuda:1 (default: best available)")
    parser.add_argument("--max-seq-length", type=int, default=None,
                        help="cut inputs at this many tokens (default: the model's own limit); fewer is faster, "
                             "and on texts longer than that, less accurate")
    parser.add_argument("--dim", type=int, default=None,
                        help="keep the first DIM dimensions of each embedding, renormalised (Matryoshka truncation; "
                             "default: all); an index records it and applies it to its queries")
    parser.add_argument("--domain", default=None,
                        help="for a mixture-of-experts model: the domain whose experts encode (e.g. science)")
    parser.add_argument("--query-prompt", default=None,
                        help="text prepended to queries (default: the model's 'query' prompt, if it defines one)")
    parser.add_argument("--document-prompt", default=None,
                        help="text prepended to documents (default: the model's 'document'/'passage' prompt, if any)")


def print_table(rows: list[tuple], headers: tuple[str, ...]) -> None:
    """A plain aligned text table on stdout."""
    cells = [tuple(str(c) for c in headers)] + [tuple(f"{c:.2f}" if isinstance(c, float) else str(c) for c in r) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def print_json_line(obj: dict) -> None:
    """The last stdout line of a command that scripts read: one JSON object on one line."""
    import json

    print(json.dumps(obj, sort_keys=False), flush=True)


def load_routed_model(args: argparse.Namespace, stack) -> object:
    """Load ``--model`` on ``--device`` and, for ``--domain``, enter its routing in ``stack`` (an ExitStack)."""
    from embedkit.models import load_model
    from embedkit.modules import routed

    model = load_model(args.model, device=args.device, max_seq_length=args.max_seq_length,
                       dim=getattr(args, "dim", None))
    stack.enter_context(routed(model, getattr(args, "domain", None)))
    return model
