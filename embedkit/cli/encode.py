"""``embedkit encode``: one text a line in, a float32 .npy out (one row a line, in order).

Small inputs are read whole and encoded in memory. ``--stream`` (implied by ``--window`` and
``--processes``) reads the input lazily and writes the output window by window, resuming an interrupted
run. ``--ray`` encodes on a Ray cluster instead (one machine or many; see :mod:`embedkit.cli.distributed`).
"""
from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path

from embedkit.atomic import save_npy_atomic, write_text_atomic
from embedkit.cli.common import add_model_args, load_routed_model
from embedkit.cli.distributed import add_ray_args, check_ray_args
from embedkit.cli.distributed import run_encode as run_ray_encode
from embedkit.errors import ConfigError, DataError


def register(sub: argparse._SubParsersAction) -> None:
    from embedkit.encoding.backends import AUTO, BACKENDS

    p = sub.add_parser("encode", help="embed a text file (one text a line) into a .npy array, or a corpus on a "
                                      "Ray cluster (--ray) into Parquet shards")
    add_model_args(p)
    p.add_argument("--input", required=True,
                   help="UTF-8 text file, one text a line (relative paths: the working directory, then EMBEDKIT_DATA); "
                        "with --ray also a BEIR corpus (folder or .jsonl) or Parquet (file or folder)")
    p.add_argument("--out", required=True, help="output .npy file (float32, one row a line); with --ray, a folder "
                                                "of Parquet shards of (id, embedding)")
    p.add_argument("--role", choices=["query", "document"], default=None,
                   help="encode as queries or documents: applies the model's prompt for that role (default: none)")
    p.add_argument("--normalize", action="store_true", help="L2-normalise the embeddings")
    p.add_argument("--show-rationales", action="store_true",
                   help="GRACE models: print each text's rationale and save them to OUT.rationales.jsonl")
    p.add_argument("--backend", choices=BACKENDS, default=AUTO,
                   help="auto (default): the fastest path for this CPU, measured once and cached (see `embedkit "
                        "info`), possibly int8 or bf16 with slightly different embeddings; torch: the model as is, "
                        "exact float32; onnx / openvino: same embeddings through ONNX Runtime / OpenVINO; bf16, "
                        "onnx-int8, openvino-int8, int8: faster where the CPU has AMX / VNNI, slightly different "
                        "embeddings; sentence-transformers: model.encode (reference)")
    p.add_argument("--workers", type=int, default=None, help="batches encoded at once (default: one per CPU core)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per batch (default: cores / workers)")
    p.add_argument("--stream", action="store_true",
                   help="read the input lazily and write the output window by window; resumes an interrupted run")
    p.add_argument("--window", type=int, default=None, help="lines per streaming window (default 16384; implies --stream)")
    p.add_argument("--no-resume", action="store_true", help="with --stream: start over even if a partial run matches")
    p.add_argument("--processes", type=int, default=None,
                   help="encode with this many processes, one shard each, then merge into --out")
    p.add_argument("--devices", default=None, help="with --processes: comma list of devices, one per process in turn "
                                                   "(e.g. cuda:0,cuda:1)")
    add_ray_args(p)
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    if args.processes is not None and args.processes < 1:
        raise ConfigError(f"--processes must be >= 1, got {args.processes}")
    for name in ("workers", "threads", "window", "batch_size", "max_seq_length"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def run(args: argparse.Namespace) -> int:
    _check(args)
    check_ray_args(args)
    prompt = {"query": args.query_prompt, "document": args.document_prompt}.get(args.role) if args.role else None
    if args.ray is not None:
        return run_ray_encode(args, prompt)
    out = Path(args.out)
    if out.suffix != ".npy":
        raise DataError("output must be a .npy file", path=args.out)
    if args.processes is not None:
        if args.domain is not None:
            raise ConfigError("--domain is not supported with --processes (each worker loads its own model)")
        return _run_parallel(args, out, prompt)
    if args.stream or args.window is not None:
        return _run_stream(args, out, prompt)

    from embedkit.data import read_lines
    from embedkit.encoding import encode

    texts = read_lines(args.input)
    with ExitStack() as stack:
        model = load_routed_model(args, stack)
        args.backend = _announce_backend(model, args)
        if args.show_rationales:
            emb = _encode_with_rationales(model, texts, prompt, args, out)
        else:
            emb = encode(model, texts, role=args.role, prompt=prompt, batch_size=args.batch_size,
                         normalize=args.normalize, device=args.device, show_progress=True, backend=args.backend,
                         workers=args.workers, threads=args.threads)
    save_npy_atomic(out, emb)
    print(f"wrote {emb.shape[0]} x {emb.shape[1]} float32 embeddings to {out}")
    return 0


def _announce_backend(model, args: argparse.Namespace) -> str:
    """Resolve ``--backend auto`` and say on stderr what it chose (the output file's rows come from it)."""
    import sys

    from embedkit.encoding.auto import resolve_backend
    from embedkit.encoding.backends import AUTO

    backend = resolve_backend(model, args.backend, args.device)
    if args.backend == AUTO:
        print(f"backend auto -> {backend} (embedkit info lists the choices; --backend torch for exact float32)",
              file=sys.stderr)
    return backend


def _encode_with_rationales(model, texts: list[str], prompt: str | None, args: argparse.Namespace, out: Path):
    """GRACE: the rationale the policy wrote for each text is what was embedded; keep it inspectable."""
    import json

    from embedkit.generative.grace import encode_with_rationales

    emb, rationales = encode_with_rationales(model, texts, prompt=prompt, batch_size=args.batch_size,
                                             normalize=args.normalize)
    records = [{"line": i + 1, "text": t, "rationale": r} for i, (t, r) in enumerate(zip(texts, rationales))]
    path = out.with_suffix(".rationales.jsonl")
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    for r in records:
        print(f"{r['line']}: {r['text'][:60]!r} -> {r['rationale']!r}")
    print(f"rationales saved to {path}")
    return emb


def _input_file(args) -> Path:
    from embedkit.paths import resolve_data_path

    source = resolve_data_path(args.input)
    if source.is_dir():
        raise DataError("is a folder, expected a file", path=source)
    return source


def _run_stream(args: argparse.Namespace, out: Path, prompt: str | None) -> int:
    from embedkit.encoding.stream import DEFAULT_WINDOW, encode_file, scan_input

    source = _input_file(args)
    scan = scan_input(source)
    if scan.rows == 0:
        raise DataError("empty file (no lines)", path=source)
    with ExitStack() as stack:
        model = load_routed_model(args, stack)
        args.backend = _announce_backend(model, args)
        result = encode_file(model, source, out, role=args.role, prompt=prompt, batch_size=args.batch_size,
                             normalize=args.normalize, device=args.device, backend=args.backend,
                             workers=args.workers, threads=args.threads, window=args.window or DEFAULT_WINDOW,
                             resume=not args.no_resume, scan=scan)
    resumed = f", resumed after {result.resumed_windows} finished window(s)" if result.resumed_windows else ""
    print(f"wrote {result.rows} x {result.dim} float32 embeddings to {out}{resumed}")
    return 0


def _run_parallel(args: argparse.Namespace, out: Path, prompt: str | None) -> int:
    from embedkit.encoding.shards import encode_file_parallel
    from embedkit.encoding.stream import DEFAULT_WINDOW

    source = _input_file(args)
    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else None
    if args.device and not devices:
        devices = [args.device]
    rows, dim = encode_file_parallel(args.model, source, out, processes=args.processes, devices=devices,
                                     role=args.role, prompt=prompt, batch_size=args.batch_size,
                                     normalize=args.normalize, backend=args.backend,
                                     window=args.window or DEFAULT_WINDOW, max_seq_length=args.max_seq_length)
    print(f"wrote {rows} x {dim} float32 embeddings to {out} ({args.processes} processes)")
    return 0
