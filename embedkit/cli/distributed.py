"""``--ray [ADDRESS]`` for ``embedkit encode`` and ``embedkit eval retrieval``: the same work on a Ray cluster."""
from __future__ import annotations

import argparse

from embedkit.errors import ConfigError

# single-machine options that mean nothing on a cluster (the pool is sized by --cpus-per-actor/--actors)
_LOCAL_ONLY = {"workers": "--workers", "threads": "--threads", "stream": "--stream", "window": "--window",
               "processes": "--processes", "devices": "--devices", "show_rationales": "--show-rationales"}


def add_ray_args(parser: argparse.ArgumentParser, encode_options: bool = True) -> None:
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="encode on a Ray cluster: ADDRESS is the head (HOST:6379 or ray://HOST:10001); "
                             "without it, start or join a local Ray instance (pip install 'embedkit[ray]')")
    parser.add_argument("--cpus-per-actor", type=int, default=None,
                        help="with --ray on CPU nodes: CPUs (engine threads) per actor, one model each "
                             "(default: the smallest node's CPUs, at most 8)")
    parser.add_argument("--actors", type=int, default=None,
                        help="with --ray: at most this many actors (default: as many as the cluster holds)")
    if encode_options:
        parser.add_argument("--text-column", default="text", help="with --ray, Parquet input: the text column "
                                                                  "(default text)")
        parser.add_argument("--id-column", default=None, help="with --ray, Parquet input: the id column "
                                                              "(default: id or _id if present, else the row number)")
        parser.add_argument("--rows-per-part", type=int, default=None,
                            help="with --ray: rows per output shard (default: from the row count, at most 16384)")


def check_ray_args(args: argparse.Namespace) -> None:
    if args.ray is None:
        for name in ("cpus_per_actor", "actors", "rows_per_part"):
            if getattr(args, name, None) is not None:
                raise ConfigError(f"--{name.replace('_', '-')} goes with --ray")
        return
    for name, flag in _LOCAL_ONLY.items():
        value = getattr(args, name, None)
        if value not in (None, False):
            raise ConfigError(f"{flag} is a single-machine option; with --ray use --cpus-per-actor / --actors")


def run_encode(args: argparse.Namespace, prompt: str | None) -> int:
    """``embedkit encode --ray``: INPUT (text, BEIR JSONL or Parquet) into the folder --out of Parquet shards."""
    from embedkit.distributed import encode_on_ray

    if args.input is None:
        raise ConfigError("--input is required")
    result = encode_on_ray(args.input, args.out, model=args.model, address=args.ray or None, role=args.role,
                           prompt=prompt, batch_size=args.batch_size, normalize=args.normalize, device=args.device,
                           backend=args.backend, max_seq_length=args.max_seq_length, domain=args.domain,
                           text_column=args.text_column, id_column=args.id_column,
                           rows_per_part=args.rows_per_part, cpus_per_actor=args.cpus_per_actor,
                           actors=args.actors, resume=not args.no_resume)
    resumed = f"; {result.resumed_parts} part(s) kept from an earlier run" if result.resumed_parts else ""
    print(f"wrote {result.rows} x {result.dim} float32 embeddings to {result.path} ({result.parts} Parquet "
          f"part(s), {result.actors}{resumed})")
    return 0


def documents_on_ray(args: argparse.Namespace, dataset, model) -> dict:
    """``eval retrieval --ray``: embed the corpus's documents on the cluster; evaluation takes them from
    here (and puts them in the embedding cache) instead of encoding them again. The texts travel through
    a folder under EMBEDKIT_CACHE, which every node must be able to read on a multi-machine cluster."""
    from embedkit.distributed import encode_texts_on_ray
    from embedkit.errors import ModelError
    from embedkit.data import full_text
    from embedkit.models import model_fingerprint
    from embedkit.paths import cache_dir

    texts = list(dict.fromkeys(full_text(d.title, d.text) for d in dataset.corpus.values()))
    embeddings, fingerprint = encode_texts_on_ray(
        texts, cache_dir() / "ray-work", model=args.model, address=args.ray or None, role="document",
        prompt=args.document_prompt, batch_size=args.batch_size, device=args.device,
        max_seq_length=args.max_seq_length, domain=args.domain, cpus_per_actor=args.cpus_per_actor,
        actors=args.actors)
    if fingerprint != model_fingerprint(model):
        raise ModelError(f"the cluster's model {args.model!r} (fingerprint {fingerprint}) is not this machine's "
                         f"({model_fingerprint(model)}); every node must hold the same model")
    return dict(zip(texts, embeddings))


def add_index_ray_args(parser: argparse.ArgumentParser) -> None:
    """``index build --embeddings DIR``: an embeddings folder from ``encode --ray``, on disk or on Ray."""
    parser.add_argument("--on-disk", action="store_true",
                        help="with --embeddings DIR and an IVF spec (IVF4096,PQ32, IVF1024,SQ8): for corpora larger "
                             "than memory, fill copies of the trained index per group of shards and merge their "
                             "inverted lists into one file that searches map from disk")
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="with --on-disk: sample, train and fill the shards in Ray tasks on this cluster "
                             "(HOST:6379; without ADDRESS, start or join a local Ray instance)")


def embeddings_folder(args: argparse.Namespace) -> bool:
    """Whether ``--embeddings`` names an embeddings folder (else a .npy file); the folder-only options
    are refused without one."""
    from pathlib import Path

    folder = args.embeddings is not None and Path(args.embeddings).is_dir()
    if not folder and (args.on_disk or args.ray is not None):
        raise ConfigError("--on-disk and --ray need --embeddings DIR (the folder `embedkit encode --ray` writes)")
    if args.ray is not None and not args.on_disk:
        raise ConfigError("--ray goes with --on-disk (an in-memory build from DIR runs in this process)")
    return folder


def run_index_build(args: argparse.Namespace, summary, print_json) -> int:
    """``embedkit index build --embeddings DIR``: the index of an embeddings folder (texts and BM25 from
    ``--corpus`` when given). The model is the one the folder records."""
    from embedkit.index.from_embeddings import build_index_folder

    if args.ids:
        raise ConfigError("--ids: an embeddings folder carries its ids")
    if args.chunk_tokens:
        raise ConfigError("--chunk-tokens: the embeddings are made already; chunk when encoding")
    index = build_index_folder(args.embeddings, args.out, spec=args.spec, metric=args.metric, corpus=args.corpus,
                               bm25=not args.no_bm25, ondisk=args.on_disk, use_ray=args.ray is not None,
                               address=args.ray or None, force=args.force, wait=args.wait)
    bm25 = bool(args.corpus and not args.no_bm25)
    if args.json:
        print_json({**summary(index), "bm25": bm25})
    else:
        where = " (inverted lists on disk)" if args.on_disk else ""
        print(f"indexed {len(index)} vectors ({index.spec}, {index.metric}, dim {index.dim}) into {args.out}{where}"
              + (" with a BM25 index beside it" if bm25 else ""))
    return 0
