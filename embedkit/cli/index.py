"""``embedkit index build|search|info|verify|add|upsert|remove|tune``: persistent FAISS (+ BM25) indexes on disk.

Commands that change a folder hold its writer lock (``--wait SECONDS`` for another writer); the slow part
of ``add``/``upsert``/``tune`` (encoding) runs before the lock is taken, into the embedding cache."""
from __future__ import annotations

import argparse
from contextlib import ExitStack
import json
import sys
from pathlib import Path

from embedkit.cli.common import add_model_args, load_routed_model
from embedkit.cli.distributed import add_index_ray_args, embeddings_folder, run_index_build
from embedkit.errors import DataError, IndexError_


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="build, query and maintain FAISS search indexes")
    isub = p.add_subparsers(dest="index_command", required=True, metavar="SUBCOMMAND")

    b = isub.add_parser("build", help="build an index over a corpus (or precomputed embeddings)")
    b.add_argument("--corpus", help="BEIR folder, corpus.jsonl, or text file with one document a line")
    b.add_argument("--embeddings", help="precomputed float32 .npy (one row a document) instead of encoding, or the "
                                        "folder of Parquet shards `embedkit encode --ray` writes")
    b.add_argument("--ids", help="with --embeddings and no --corpus: text file with one id a line, row order")
    b.add_argument("--out", required=True, help="index folder to write")
    add_model_args(b)
    b.add_argument("--spec", default="Flat", help="FAISS index_factory spec: Flat (default, exact), HNSW32, "
                   "IVF1024,Flat, IVF1024,PQ32, SQ8 (int8), ...; binary over sign bits: BFlat, BHNSW32, BIVF1024; "
                   "any of them + rescore or + rescore-int8, e.g. BFlat+rescore (docs/quantization.md)")
    b.add_argument("--metric", default="cosine", choices=["cosine", "ip", "l2"], help="similarity (default cosine)")
    _add_chunk_args(b)
    b.add_argument("--no-bm25", action="store_true", help="do not build the BM25 index kept beside the FAISS one")
    b.add_argument("--force", action="store_true", help="replace an existing index at --out")
    _add_wait_arg(b)
    b.add_argument("--json", action="store_true", help="print one JSON line with the index info")
    add_index_ray_args(b)
    b.set_defaults(func=run_build)

    s = isub.add_parser("search", help="query an index with text")
    s.add_argument("dir", help="index folder")
    s.add_argument("--query", required=True, action="append", help="query text (repeat for several queries)")
    s.add_argument("-k", type=int, default=10, help="hits per query (default 10)")
    s.add_argument("--mode", choices=["dense", "bm25", "hybrid"], default="dense",
                   help="dense (FAISS, default), bm25, or hybrid (reciprocal rank fusion of both)")
    _add_loaded_model_args(s)
    s.add_argument("--mmap", action="store_true", help="memory-map the index instead of reading it")
    s.add_argument("--verify", action="store_true", help="with --mmap, also check the mapped FAISS file's SHA-256 "
                   "(every file read into memory is always checked)")
    s.add_argument("--json", action="store_true", help='one line per query: {"hits": [{"id", "score", "title", "text"}]}')
    s.set_defaults(func=run_search)

    i = isub.add_parser("info", help="describe an index")
    i.add_argument("dir", help="index folder")
    i.add_argument("--verify", action="store_true", help="kept for scripts: every file's SHA-256 is always "
                   "checked (see `index verify` for a report of every problem)")
    i.add_argument("--json", action="store_true", help="one JSON line (count, dim, spec, metric, model, ...)")
    i.set_defaults(func=run_info)

    v = isub.add_parser("verify", help="check every file of an index against its manifest (size and SHA-256)",
                        description="Check every file of an index folder against its manifest (size and SHA-256); "
                                    "one line per problem. Exit status: 0 when every file matches, 1 when a "
                                    "problem is found, 2 when DIR is not an index folder.")
    v.add_argument("dir", help="index folder")
    v.add_argument("--json", action="store_true", help='one JSON line: {"ok", "problems", "files", "bytes", "leftovers"}')
    v.set_defaults(func=run_verify)

    for name, upsert, text in (("add", False, "add documents to an index (ids already there are refused)"),
                               ("upsert", True, "add documents, replacing those whose id is already there")):
        a = isub.add_parser(name, help=text)
        a.add_argument("dir", help="index folder")
        a.add_argument("--corpus", help="BEIR folder, corpus.jsonl, or text file with one document a line")
        a.add_argument("--embeddings", help="precomputed float32 .npy instead of encoding (rows match --corpus or --ids)")
        a.add_argument("--ids", help="with --embeddings and no --corpus: text file with one id a line")
        _add_loaded_model_args(a)
        a.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default 32)")
        _add_wait_arg(a)
        a.add_argument("--json", action="store_true", help="print one JSON line with the index info")
        a.set_defaults(func=run_add, upsert=upsert)

    r = isub.add_parser("remove", help="remove documents from an index by id")
    r.add_argument("dir", help="index folder")
    r.add_argument("--ids", required=True, nargs="+", help="document ids to remove")
    r.add_argument("--compact", action="store_true", help="rebuild HNSW graphs now rather than marking deleted")
    _add_wait_arg(r)
    r.add_argument("--json", action="store_true", help="print one JSON line with the index info")
    r.set_defaults(func=run_remove)

    t = isub.add_parser("tune", help="pick nprobe/efSearch for a target recall@k against exact search")
    t.add_argument("dir", help="index folder")
    t.add_argument("--queries", required=True, help="queries: BEIR folder, queries.jsonl, or one query a line")
    t.add_argument("--target-recall", type=float, default=0.95, help="recall@k to reach (default 0.95)")
    t.add_argument("-k", type=int, default=10, help="k of recall@k (default 10)")
    t.add_argument("--sample", type=int, default=1000, help="use at most this many queries (default 1000)")
    _add_loaded_model_args(t)
    _add_wait_arg(t)
    t.add_argument("--json", action="store_true", help="print the tuning result as one JSON line")
    t.set_defaults(func=run_tune)


def _add_wait_arg(p: argparse.ArgumentParser) -> None:
    from embedkit.index.lock import DEFAULT_WAIT

    p.add_argument("--wait", type=float, default=DEFAULT_WAIT, metavar="SECONDS",
                   help=f"wait this long for another process writing the index, then fail (default {DEFAULT_WAIT:g})")


def _add_chunk_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chunk-tokens", type=int, default=None,
                   help="split documents longer than this many tokens (title included) into overlapping chunks; "
                        "each hit names its parent document (default: no chunking)")
    p.add_argument("--chunk-overlap", type=int, default=32, help="tokens shared by consecutive chunks (default 32)")


def _add_loaded_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model to encode with (default: the one recorded in the index)")
    p.add_argument("--force", action="store_true", help="use --model even if it is not the model the index was built with")
    p.add_argument("--device", default=None, help="torch device (default: best available)")


# ---------------------------------------------------------------------------- helpers


def _print_json(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False))


def _recorded_model(meta: dict, args):
    """The model to encode with: ``--model`` (checked against the index unless ``--force``) or the recorded one.

    ``meta`` is the index's manifest (read without loading the index)."""
    from embedkit.index.faiss_index import check_model
    from embedkit.models import model_fingerprint, model_name

    recorded = meta.get("model") or {}
    source = args.model or recorded.get("source")
    if source is None:
        raise IndexError_(f"{args.dir}: the index records no loadable model ({recorded.get('name') or 'unknown'}); "
                          "pass --model")
    model = _load_for(meta, source, args.device)
    check_model(recorded.get("name"), recorded.get("fingerprint"), model_fingerprint(model), model_name(model),
                force=args.force)
    return model


def _load_for(meta: dict, source, device):
    """Load ``source`` with the token limit and truncation the index's vectors were made with
    (``--max-seq-length`` and ``--dim`` at build time change the model's fingerprint, so they are applied
    again: an index built with ``--dim`` truncates its queries the same way)."""
    from embedkit.models import load_model

    build = meta.get("build") or {}
    return load_model(source, device=device, max_seq_length=build.get("max_seq_length"), dim=build.get("truncate_dim"))


def _read_ids(path: str) -> list[str]:
    from embedkit.data import read_lines

    ids = [line.strip() for line in read_lines(path)]
    if any(not i for i in ids):
        raise DataError("blank id line", path=path)
    return ids


def _load_embeddings(path: str, rows: int | None):
    from embedkit.index.build import NpyRows

    vectors = NpyRows(path)
    if vectors.ndim != 2:
        raise DataError(f"embeddings must be a 2-D array, got shape {vectors.shape}", path=path)
    if rows is not None and len(vectors) != rows:
        raise DataError(f"{len(vectors)} embedding rows for {rows} ids/documents", path=path)
    return vectors


def _precomputed(args):
    """(ids, vectors, texts, titles) for ``--embeddings`` with ``--corpus`` (ids/texts from it) or ``--ids``."""
    if args.corpus:
        from embedkit.data import iter_documents

        docs = list(iter_documents(args.corpus))
        ids, texts, titles = [d.id for d in docs], [d.text for d in docs], [d.title for d in docs]
    elif args.ids:
        ids, texts, titles = _read_ids(args.ids), None, None
    else:
        raise DataError("--embeddings needs --ids FILE (one id a line) or --corpus PATH (documents in row order)")
    return ids, _load_embeddings(args.embeddings, len(ids)), texts, titles


def _check_out(out: Path, force: bool) -> None:
    from embedkit.index.lock import LOCK_FILE
    from embedkit.index.storage import MANIFEST

    if out.exists() and not out.is_dir():
        raise IndexError_(f"{out}: exists and is not a folder")
    if (out / MANIFEST).exists() and not force:
        raise IndexError_(f"{out}: an index already exists there; pass --force to replace it")
    if out.is_dir() and not (out / MANIFEST).exists() and any(p.name != LOCK_FILE for p in out.iterdir()):
        raise IndexError_(f"{out}: folder is not empty and not an index; choose another --out")


def _summary(index) -> dict:
    info = index.info()
    return {key: info[key] for key in ("count", "dim", "spec", "metric", "model", "model_fingerprint",
                                       "search_params", "path")}


# ---------------------------------------------------------------------------- commands


def run_build(args: argparse.Namespace) -> int:
    from embedkit.index import BM25Index, IndexFolder, build_from_vectors, build_index
    from embedkit.index.build import embedding_dim
    from embedkit.index.lock import writer_lock
    from embedkit.models import model_fingerprint, model_name, model_width

    out = Path(args.out)
    _check_out(out, args.force)  # before the slow part; checked again under the lock
    if embeddings_folder(args):
        return run_index_build(args, _summary, _print_json)
    if not args.corpus and not args.embeddings:
        raise DataError("give --corpus PATH (documents to encode) or --embeddings FILE.npy")
    with ExitStack() as stack:
        model = load_routed_model(args, stack)
        source = _model_source(args.model)
        if args.embeddings:
            ids, vectors, texts, titles = _precomputed(args)
            dim = embedding_dim(model)
            if vectors.shape[1] not in (dim, args.dim and model_width(model)):  # --dim: full-width rows are cut
                raise DataError(f"embeddings have dimension {vectors.shape[1]} but model {model_name(model)} "
                                f"gives {dim}", path=args.embeddings)
            index = build_from_vectors(ids, vectors, args.spec, args.metric, texts=texts, titles=titles,
                                       model_name=model_name(model), model_fingerprint=model_fingerprint(model),
                                       model_source=source, dim=dim)
            index.build_params["max_seq_length"] = getattr(model, "max_seq_length", None)
        else:
            from embedkit.data import count_documents, iter_documents

            index = build_index(model, iter_documents(args.corpus), args.spec, args.metric, args.batch_size,
                                args.chunk_tokens, args.chunk_overlap, args.device, prompt=args.document_prompt,
                                model_source=source, total=count_documents(args.corpus))
        bm25 = None
        if args.corpus and not args.no_bm25:
            from embedkit.data import iter_documents

            bm25 = BM25Index.from_documents(iter_documents(args.corpus))
        with writer_lock(out, args.wait):
            _check_out(out, args.force)
            IndexFolder(index, bm25).save(out, wait=args.wait)
    if args.json:
        _print_json({**_summary(index), "bm25": bm25 is not None})
    else:
        print(f"indexed {len(index)} vectors ({index.spec}, {index.metric}, dim {index.dim}) into {out}"
              + (" with a BM25 index beside it" if bm25 is not None else ""))
    return 0


def _model_source(name) -> str:
    """What to record so that ``load_model`` finds the model again: 'default', an absolute folder, or a hub id."""
    if name is None or str(name) == "default":
        return "default"
    path = Path(str(name)).expanduser()
    return str(path.resolve()) if path.exists() else str(name)


def run_search(args: argparse.Namespace) -> int:
    from embedkit.encoding import encode
    from embedkit.index import BM25Index, FaissIndex, HybridSearcher, IndexFolder

    if args.k < 1:
        raise IndexError_(f"-k must be at least 1, got {args.k}")
    if args.mode == "bm25":
        results = BM25Index.load(args.dir).search(args.query, args.k)
    else:
        if args.mode == "hybrid":  # both sides from one generation, BM25 checked before the model loads
            folder = IndexFolder.load(args.dir, mmap=args.mmap, verify=args.verify, need_bm25=True)
            index, bm25 = folder.index, folder.bm25
        else:
            index, bm25 = FaissIndex.load(args.dir, mmap=args.mmap, verify=args.verify), None
        model = _recorded_model(_manifest_of(index), args)
        vectors = encode(model, args.query, role="query", device=args.device, show_progress=False,
                         backend=index.build_params.get("backend") or "torch")
        if bm25 is not None:
            results = HybridSearcher(index, bm25, model).search(args.query, args.k, query_vectors=vectors)
        else:
            results = index.search(vectors, args.k, by_parent=False)
    for query, hits in zip(args.query, results):
        if args.json:
            _print_json({"hits": [{"id": h.id, "score": h.score, "title": h.title, "text": h.text,
                                   **({"parent_id": h.parent_id} if h.parent_id else {})} for h in hits]})
            continue
        print(f"query: {query}")
        for rank, h in enumerate(hits, 1):
            label = h.id if not h.parent_id else f"{h.id} (of {h.parent_id})"
            snippet = (h.text or "").replace("\n", " ")
            print(f"{rank:3d}. {h.score:.4f}  {label}  {h.title or ''}  {snippet[:100]}")
    return 0


def _manifest_of(index) -> dict:
    """The parts of a manifest that ``_recorded_model`` reads, from a loaded index."""
    return {"model": {"name": index.model_name, "fingerprint": index.model_fingerprint, "source": index.model_source},
            "build": index.build_params}


def run_info(args: argparse.Namespace) -> int:
    from embedkit.index import IndexFolder

    folder = IndexFolder.load(args.dir, verify=args.verify)
    info = folder.index.info()
    info["bm25"] = len(folder.bm25) if folder.bm25 is not None else None
    info["memory"] = folder.index.memory()  # bytes per vector
    if args.json:
        _print_json(info)
    else:
        for key, value in info.items():
            print(f"{key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from embedkit.index import IndexFolder
    from embedkit.index.storage import MANIFEST, read_manifest

    folder = Path(args.dir)
    if not (folder / MANIFEST).is_file():
        read_manifest(folder)  # raises: no such folder / not an index folder
    problems = IndexFolder.verify(folder)
    try:
        meta = read_manifest(folder)
        files, nbytes = len(meta["files"]), sum(r["bytes"] for r in meta["files"].values())
        leftovers = IndexFolder.leftovers(folder)
    except IndexError_:  # a damaged manifest: already the first problem
        files, nbytes, leftovers = 0, 0, []
    if args.json:
        _print_json({"ok": not problems, "problems": problems, "files": files, "bytes": nbytes,
                     "leftovers": [p.name for p in leftovers]})
    else:
        for problem in problems:
            print(problem)
        if not problems:
            print(f"{folder}: ok ({files} files, {nbytes:,} bytes match the manifest's sizes and SHA-256 sums)")
        if leftovers:
            print(f"{folder}: {len(leftovers)} files left by an interrupted save (not part of the index; the next "
                  "writer removes them)")
    return 1 if problems else 0


def run_add(args: argparse.Namespace) -> int:
    """``index add`` and ``index upsert``: encode before taking the lock (into the embedding cache), then
    load, change and save both sides under it."""
    from embedkit.index import IndexFolder
    from embedkit.index.faiss_index import LISTS_READ_ONLY, read_index_manifest
    from embedkit.models import model_fingerprint, model_name

    meta = read_index_manifest(args.dir)
    if not args.corpus and not args.embeddings:
        raise DataError("give --corpus PATH (documents to encode) or --embeddings FILE.npy")
    if "lists" in meta["roles"]:  # before encoding anything
        raise IndexError_(f"{args.dir}: {LISTS_READ_ONLY}")
    model = None
    if args.embeddings:
        ids, vectors, texts, titles = _precomputed(args)
        if args.model:
            model = _recorded_model(meta, args)
    else:
        from embedkit.data import count_documents, iter_documents
        from embedkit.index.build import encode_for

        model = _recorded_model(meta, args)
        encode_for(meta, model, iter_documents(args.corpus), args.batch_size, args.device,
                   total=count_documents(args.corpus))
    with IndexFolder.update(args.dir, wait=args.wait) as folder:
        if model is not None:  # the folder may have been rebuilt while we encoded
            folder.index.check_model(model_fingerprint(model), model_name(model), force=args.force)
        if args.embeddings:
            added = folder.add_vectors(ids, vectors[:], texts=texts, titles=titles, upsert=args.upsert)
        else:
            added = folder.add_documents(model, iter_documents(args.corpus), upsert=args.upsert,
                                         batch_size=args.batch_size, device=args.device)
    index = folder.index
    if args.json:
        _print_json({**_summary(index), "added": added})
    else:
        print(f"{'upserted' if args.upsert else 'added'} {added} vectors; the index now holds {len(index)}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from embedkit.index import IndexFolder

    with IndexFolder.update(args.dir, wait=args.wait) as folder:
        removed = folder.remove(args.ids)  # a chunked document goes with all its chunks
        if args.compact:
            folder.index.compact()
    if args.json:
        _print_json({**_summary(folder.index), "removed": removed})
    else:
        print(f"removed {removed} vectors; the index now holds {len(folder.index)}")
    return 0


def _read_queries(path: str) -> list[str]:
    from embedkit.paths import resolve_data_path

    p = resolve_data_path(path)
    if p.is_dir():
        p = p / "queries.jsonl"
        if not p.exists():
            raise DataError("folder has no queries.jsonl", path=path)
    if p.suffix == ".jsonl":
        from embedkit.data.textio import iter_lines, parse_json_object, text_field

        queries = [text_field(parse_json_object(line, p, n), "text", p, n) for n, line in iter_lines(p) if line.strip()]
    else:
        from embedkit.data import read_lines

        queries = [q for q in read_lines(p) if q.strip()]
    if not queries:
        raise DataError("no queries", path=p)
    return queries


def run_tune(args: argparse.Namespace) -> int:
    import random

    from embedkit.encoding import cached_encode
    from embedkit.index import IndexFolder
    from embedkit.index.faiss_index import read_index_manifest

    meta = read_index_manifest(args.dir)
    queries = _read_queries(args.queries)
    if len(queries) > args.sample:
        queries = random.Random(0).sample(queries, args.sample)
    model = _recorded_model(meta, args)
    vectors = cached_encode(model, queries, role="query", device=args.device, show_progress=len(queries) > 1000,
                            backend=(meta.get("build") or {}).get("backend") or "torch")
    with IndexFolder.update(args.dir, wait=args.wait) as folder:
        result = folder.index.tune(vectors, target_recall=args.target_recall, k=args.k)
    if args.json:
        _print_json(result.as_dict())
    else:
        for point in result.curve:
            print(f"  {result.param}={point.value}: recall@{result.k} {point.recall:.4f}, {point.qps:.0f} queries/s")
        print(result.message)
    if not result.reached:
        print(f"embedkit: warning: {result.message}", file=sys.stderr)
    return 0
