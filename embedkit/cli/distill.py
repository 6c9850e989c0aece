"""``embedkit distill static``: a static (model2vec) embedding model from any transformer model."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("distill", help="turn a model into a faster one")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    s = kinds.add_parser("static", help="a static embedding model (model2vec, from the model's own vocabulary, "
                                        "offline): a lookup and a mean per text instead of a transformer pass")
    s.add_argument("--model", default="default", help="'default', a local model folder, or a hub id")
    s.add_argument("--out", required=True, help="folder to write (a sentence-transformers model folder)")
    s.add_argument("--pca-dims", type=int, default=256, help="output width (default 256; 0 keeps the model's)")
    s.add_argument("--device", default=None, help="torch device for the distillation passes (default: best)")
    s.set_defaults(func=run_static)


def run_static(args: argparse.Namespace) -> int:
    from embedkit.distill import distill_static
    from embedkit.models import load_model

    model = load_model(args.model, device=args.device)
    out = distill_static(model, args.out, pca_dims=args.pca_dims or None, source=args.model)
    print(f"wrote a static model to {out} (load it with --model {out})")
    return 0
