"""``embedkit encode``: one text a line in, a float32 .npy out (one row a line, in order)."""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from embedkit.cli.common import add_model_args
from embedkit.errors import DataError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="embed a text file (one text a line) into a .npy array")
    add_model_args(p)
    p.add_argument("--input", required=True, help="UTF-8 text file, one text a line")
    p.add_argument("--out", required=True, help="output .npy file (float32, one row a line)")
    p.add_argument("--role", choices=["query", "document"], default=None,
                   help="encode as queries or documents: applies the model's prompt for that role (default: none)")
    p.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    p.set_defaults(func=run)


def save_npy_atomic(path: Path, array) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    from embedkit.data import read_lines
    from embedkit.encoding import encode
    from embedkit.models import load_model

    texts = read_lines(args.input)
    if not texts:
        raise DataError("no texts to encode (the file is empty)", path=args.input)
    out = Path(args.out)
    if out.suffix != ".npy":
        raise DataError("output must be a .npy file", path=args.out)
    model = load_model(args.model, device=args.device)
    prompt = {"query": args.query_prompt, "document": args.document_prompt}.get(args.role) if args.role else None
    emb = encode(model, texts, role=args.role, prompt=prompt, batch_size=args.batch_size, normalize=args.normalize,
                 device=args.device, show_progress=True)
    save_npy_atomic(out, emb)
    print(f"wrote {emb.shape[0]} x {emb.shape[1]} float32 embeddings to {out}")
    return 0
