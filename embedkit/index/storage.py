"""Crash-safe index folders: each save writes a new generation of files, then switches ``meta.json``.

A save writes every data file under a fresh generation-tagged name (``index-<gen>.faiss``, ...), flushes
them to disk, and only then replaces the manifest (``meta.json``) with ``os.replace``, which is atomic.
Files of older generations are deleted after the switch. A crash at any point therefore leaves a folder
whose manifest names a complete set of files: the old one before the switch, the new one after it. This
is stronger than "write a temp folder, then rename": renaming over an existing folder needs two renames
on POSIX, and a crash between them leaves no index at that path.

The manifest records each file's size and SHA-256; ``check_files`` compares sizes (cheap, catches
truncation) and, on request, checksums (reads every byte).
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from pathlib import Path

from embedkit.errors import IndexError_


def new_generation() -> str:
    """A sortable, unique tag for one save's files."""
    return time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    try:
        fsync_file(path)
    except OSError:  # some filesystems cannot fsync a directory; the rename is still atomic
        pass


def file_record(path: Path) -> dict:
    """Flush ``path`` to disk and describe it for the manifest."""
    fsync_file(path)
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def write_json_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def read_manifest(folder: Path, name: str, what: str) -> dict:
    """The manifest of an index folder, or one clear line saying why the folder is not one."""
    folder = Path(folder)
    if not folder.is_dir():
        raise IndexError_(f"{folder}: no such {what} folder")
    path = folder / name
    if not path.is_file():
        raise IndexError_(f"{folder}: not an {what} folder (no {name})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexError_(f"{path}: corrupt manifest ({exc})") from None
    if not isinstance(meta, dict) or "files" not in meta:
        raise IndexError_(f"{path}: not an embedkit {what} manifest")
    return meta


def check_files(folder: Path, files: dict, verify: bool) -> None:
    """Refuse missing or truncated files (size check), and corrupt ones when ``verify`` (SHA-256)."""
    for name, record in files.items():
        path = folder / name
        if not path.is_file():
            raise IndexError_(f"{path}: missing (the index folder is incomplete)")
        size = path.stat().st_size
        if size != record["bytes"]:
            raise IndexError_(f"{path}: truncated or overwritten ({size} bytes, the manifest says {record['bytes']})")
        if verify and sha256_file(path) != record["sha256"]:
            raise IndexError_(f"{path}: checksum mismatch (the file is corrupt)")


def remove_stale(folder: Path, keep: set[str], prefixes: tuple[str, ...]) -> None:
    """Delete files of earlier generations (and leftovers of crashed saves) with one of ``prefixes``."""
    for path in Path(folder).iterdir():
        if path.name in keep or not path.name.startswith(prefixes):
            continue
        if path.is_dir():
            for child in path.iterdir():
                child.unlink(missing_ok=True)
            path.rmdir()
        else:
            path.unlink(missing_ok=True)
