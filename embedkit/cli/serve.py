"""``embedkit serve INDEX_DIR [NAME=INDEX_DIR ...]``: the search and embedding service (docs/serve.md)."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve indexes over HTTP: search, OpenAI-compatible embeddings, a search page",
                       description="Serve embedkit indexes over HTTP (docs/serve.md). Binds to 127.0.0.1 unless "
                                   "--host says otherwise.")
    p.add_argument("indexes", nargs="+", metavar="INDEX_DIR",
                   help="index folder(s) to serve; NAME=DIR names one (default name: the folder's name)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one and prints it)")
    p.add_argument("--token-file", default=None,
                   help="file whose first line is the bearer token that writes (POST/DELETE /documents) need; "
                        "without it the server only reads")
    p.add_argument("--device", default=None, help="torch device for the models (default: best available)")
    g = p.add_argument_group("micro-batching")
    g.add_argument("--max-batch", type=int, default=32, help="most texts in one forward pass (default 32; 1 = off)")
    g.add_argument("--max-wait-ms", type=float, default=2.0,
                   help="longest an idle server holds a request to batch it with others (default 2 ms)")
    g.add_argument("--encode-workers", type=int, default=None,
                   help="forward passes run at once (default: one per CPU core, one torch thread each)")
    g = p.add_argument_group("limits (a request beyond one is refused whole)")
    g.add_argument("--max-body-bytes", type=int, default=2 * 2**20, help="request body size (default 2 MiB): 413")
    g.add_argument("--max-texts", type=int, default=256, help="texts or documents per request (default 256): 413")
    g.add_argument("--max-text-chars", type=int, default=20_000, help="characters per text (default 20000): 413")
    g.add_argument("--max-k", type=int, default=100, help="largest k a search may ask for (default 100): 422")
    g = p.add_argument_group("writes and other writers of the folder (docs/serve.md#durability)")
    g.add_argument("--checkpoint-seconds", type=float, default=1.0,
                   help="save the logged writes as a new generation of the folder, and let its writer lock go, "
                        "this long after the first unsaved write (default 1 s)")
    g.add_argument("--checkpoint-bytes", type=int, default=64 * 2**20,
                   help="... or once the write-ahead log is this large (default 64 MiB)")
    g.add_argument("--wait", type=float, default=5.0, metavar="SECONDS",
                   help="how long a write waits for another writer of the folder (`embedkit index add`) before "
                        "it gets a 503 (default 5 s)")
    g.add_argument("--poll-seconds", type=float, default=1.0,
                   help="how often to look for a generation another writer saved, and serve it (default 1 s)")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from embedkit.serve import make_config, parse_index_arg, read_token, run as serve

    config = make_config(indexes=[parse_index_arg(i) for i in args.indexes],
                         token=read_token(args.token_file) if args.token_file else None, device=args.device,
                         max_body_bytes=args.max_body_bytes, max_texts=args.max_texts,
                         max_text_chars=args.max_text_chars, max_k=args.max_k, max_batch=args.max_batch,
                         max_wait_ms=args.max_wait_ms, encode_workers=args.encode_workers,
                         checkpoint_bytes=args.checkpoint_bytes, checkpoint_seconds=args.checkpoint_seconds,
                         lock_wait=args.wait, poll_seconds=args.poll_seconds)
    serve(config, host=args.host, port=args.port, log_level=args.log_level)
    return 0
