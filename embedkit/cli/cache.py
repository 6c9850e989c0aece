"""``embedkit cache info|clear``: the embedding cache under EMBEDKIT_CACHE."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="show or empty the embedding cache (EMBEDKIT_CACHE)")
    actions = p.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    actions.add_parser("info", help="location, entries and size").set_defaults(func=run_info)
    actions.add_parser("clear", help="delete every cached embedding").set_defaults(func=run_clear)


def run_info(args: argparse.Namespace) -> int:
    from embedkit.encoding import EmbeddingCache

    info = EmbeddingCache().info()
    print(f"path     {info['path']}\nentries  {info['entries']}\nsize     {info['bytes'] / 1e6:.1f} MB")
    return 0


def run_clear(args: argparse.Namespace) -> int:
    from embedkit.encoding import EmbeddingCache

    cache = EmbeddingCache()
    print(f"removed {cache.clear()} cached embedding files from {cache.root}")
    return 0
