"""``embedkit cache info|clear``: everything embedkit keeps under EMBEDKIT_CACHE (see ``paths.CACHE_PARTS``)."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="show or empty embedkit's cache (EMBEDKIT_CACHE)")
    actions = p.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    actions.add_parser("info", help="location, and size of each part (embeddings, mteb, demo index, ...)"
                       ).set_defaults(func=run_info)
    actions.add_parser("clear", help="delete everything embedkit cached (embeddings, mteb's cache, demo index, ...)"
                       ).set_defaults(func=run_clear)


def _size(path: Path) -> tuple[int, int]:
    """(files, bytes) under ``path``, symbolic links not followed."""
    if path.is_symlink() or path.is_file():
        return 1, path.lstat().st_size
    files = size = 0
    for item in path.rglob("*"):
        if item.is_symlink() or item.is_file():
            files, size = files + 1, size + item.lstat().st_size
    return files, size


def _parts(root: Path) -> tuple[dict[str, Path], list[Path]]:
    from embedkit.paths import CACHE_PARTS

    entries = sorted(root.iterdir()) if root.is_dir() else []
    return ({p.name: p for p in entries if p.name in CACHE_PARTS}, [p for p in entries if p.name not in CACHE_PARTS])


def run_info(args: argparse.Namespace) -> int:
    from embedkit.cli.common import print_table
    from embedkit.paths import CACHE_PARTS, cache_dir

    root = cache_dir()
    known, other = _parts(root)
    rows, total = [], 0
    for name, path in known.items():
        files, size = _size(path)
        total += size
        rows.append((name, files, f"{size / 1e6:.1f} MB", CACHE_PARTS[name]))
    for path in other:
        files, size = _size(path)
        total += size
        rows.append((path.name, files, f"{size / 1e6:.1f} MB", "not written by embedkit: `cache clear` leaves it"))
    print(f"path     {root}\nsize     {total / 1e6:.1f} MB\n")
    if rows:
        print_table(rows, ("part", "files", "size", "what"))
    else:
        print("(empty)")
    return 0


def run_clear(args: argparse.Namespace) -> int:
    from embedkit.paths import cache_dir

    root = cache_dir()
    known, other = _parts(root)
    freed = sum(_size(p)[1] for p in known.values())
    for path in known.values():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    print(f"removed {', '.join(known) or 'nothing'} from {root} ({freed / 1e6:.1f} MB)")
    if other:
        print(f"left alone (not written by embedkit): {', '.join(p.name for p in other)}")
    return 0
