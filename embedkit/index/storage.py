"""Index folders as generations: one writer at a time, readers that always see one complete state.

A folder holds one manifest, ``meta.json``, and the data files it names. Every file is written once,
under a name tagged with the save's generation (``index-<gen>.faiss``, ``bm25docs-<gen>.jsonl``, ...),
and never changed after. A save (under the folder's writer lock, :mod:`embedkit.index.lock`):

1. removes what crashed saves left behind (generation files the manifest does not name), which only a
   writer may do: a reader never deletes anything;
2. writes its files and flushes each to disk (``fsync``), taking size and SHA-256 as the bytes go out;
3. switches the manifest with ``os.replace``, which is atomic, then flushes the folder;
4. deletes the files that only the manifest it replaced named, never one the new manifest names.

A crash at any point leaves a manifest that names a complete, flushed set of files: the old one before the
switch, the new one after it. (Stronger than "write a temp folder, then rename": renaming over an existing
folder takes two renames on POSIX, and a crash between them leaves no index at that path.)

Readers (:func:`open_generation`) read the manifest, then open every file it names. If a file has gone, a
writer switched generations in between: they read the manifest again and retry. Once every file is open
the generation is theirs, whatever writers do next: on Linux an open file's data outlives its name, and
readers reach the open files through ``/proc/self/fd``.

Every byte a save writes goes through :class:`NewFile` (``os.write`` and ``os.fsync``), so the
fault-injection tests that make those calls fail reach all of them.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

from embedkit.errors import IndexError_
from embedkit.index.lock import DEFAULT_WAIT, LOCK_FILE, writer_lock

MANIFEST = "meta.json"
LEGACY_BM25_MANIFEST = "bm25.json"  # format 1 kept the BM25 side under its own manifest
GENERATION_PREFIXES = ("index-", "docs-", "deleted-", "bm25-", "bm25docs-", "lists-", "rescore-")
_TEMP_PREFIX = f".{MANIFEST}."
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_BLOCK = 1 << 20
_RETRIES = 100  # generation switches a reader outwaits before it gives up (each retry costs a manifest read)
_FD_DIR = Path("/proc/self/fd")


def new_generation() -> str:
    """A sortable, unique tag for one save's files."""
    return time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (22, 95):  # EINVAL / EOPNOTSUPP: the filesystem cannot fsync a folder
            raise
    finally:
        os.close(fd)


class NewFile:
    """A file of a new generation, written with ``os.write`` and flushed with ``os.fsync`` on ``close``.

    Size and SHA-256 are taken as the bytes go out, so a save never reads its files back. Small writes
    (FAISS writes headers field by field) are gathered into blocks first.
    """

    def __init__(self, path: Path):
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self._hash = hashlib.sha256()
        self._size = 0
        self._buffer = bytearray()
        self.head = b""  # the file's first bytes (FAISS's type tag), kept for the manifest

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        if len(self._buffer) + len(view) < _BLOCK:
            self._buffer += view
        else:
            self._flush_buffer()
            self._write_all(view)
        return len(view)

    def _flush_buffer(self) -> None:
        if self._buffer:
            self._write_all(memoryview(self._buffer))
            self._buffer = bytearray()

    def _write_all(self, view: memoryview) -> None:
        if not self._size:
            self.head = bytes(view[:16])
        self._hash.update(view)
        self._size += len(view)
        try:
            while len(view):
                view = view[os.write(self._fd, view[:1 << 30]):]
        except OSError as exc:  # os.write names no file: name it
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None

    def close(self) -> dict:
        """Flush to disk and close; returns the manifest record ``{"bytes", "sha256"}``."""
        try:
            self._flush_buffer()
            try:
                os.fsync(self._fd)
            except OSError as exc:
                raise OSError(exc.errno, f"{exc.strerror} (flushing to disk)", str(self.path)) from None
        finally:
            os.close(self._fd)
            self._fd = -1
        return {"bytes": self._size, "sha256": self._hash.hexdigest()}

    def abandon(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class GenerationWriter:
    """The files of one save: ``file(name)`` opens a new one, ``records`` describes those finished."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.generation = new_generation()
        self.records: dict[str, dict] = {}
        self.heads: dict[str, bytes] = {}
        self._created: list[str] = []

    @contextmanager
    def file(self, name: str) -> Iterator[NewFile]:
        check_name(name, self.folder)
        self._created.append(name)
        out = NewFile(self.folder / name)
        try:
            yield out
        except BaseException:
            out.abandon()
            raise
        self.records[name] = out.close()
        self.heads[name] = out.head

    def adopt(self, name: str, source: Path) -> None:
        """Move a finished file written elsewhere on the same filesystem (FAISS's on-disk merge writes its
        lists file through a memory map, not through :class:`NewFile`) into the generation as ``name``:
        flushed, checksummed by reading it once, then renamed into the folder."""
        check_name(name, self.folder)
        digest, size = hashlib.sha256(), 0
        fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        try:
            while block := os.pread(fd, _BLOCK, size):
                digest.update(block)
                size += len(block)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._created.append(name)
        os.rename(source, self.folder / name)  # same filesystem (the caller's work folder is beside this one)
        self.records[name] = {"bytes": size, "sha256": digest.hexdigest()}

    def head(self, name: str, size: int = 4) -> bytes:
        """The first ``size`` bytes of a finished file."""
        return self.heads[name][:size]

    @contextmanager
    def scratch(self, name: str) -> Iterator[Path]:
        """A folder for a library that writes only by path (bm25s), removed after the block (or, after a
        crash, by the next writer: its name has a generation prefix)."""
        check_name(name, self.folder)
        self._created.append(name)
        path = self.folder / name
        path.mkdir()
        try:
            yield path
        finally:
            _remove(path)

    def discard(self) -> None:
        for name in self._created:
            _remove(self.folder / name)


def check_name(name: object, where: Path) -> str:
    """A data file's name from a manifest: a plain name inside the folder (``..``, ``/`` and over-long names
    refused, so a damaged manifest can never make a writer delete a file elsewhere)."""
    if not isinstance(name, str) or len(name) > 200 or not _NAME.fullmatch(name) or name.startswith(".."):
        raise IndexError_(f"{where}: bad file name {name!r:.100} in the manifest")
    return name


def one_line(exc: BaseException) -> str:
    """A library's exception as one short line (some messages span lines or run long)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- manifest


def parse_manifest(raw: bytes, path: Path) -> dict:
    """The manifest's JSON, with its ``files`` table checked (names, sizes, checksums)."""
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise IndexError_(f"{path}: corrupt manifest ({one_line(exc)})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("files"), dict):
        raise IndexError_(f"{path}: not an embedkit index manifest (no 'files' table)")
    for name, record in meta["files"].items():
        check_name(name, path)
        if (not isinstance(record, dict) or not isinstance(record.get("bytes"), int)
                or isinstance(record.get("bytes"), bool) or record["bytes"] < 0
                or not isinstance(record.get("sha256"), str)):
            raise IndexError_(f"{path}: field 'files.{name}' must be {{\"bytes\": size, \"sha256\": hex}}")
    return meta


def _read_raw(folder: Path, what: str) -> bytes:
    if not folder.is_dir():
        raise IndexError_(f"{folder}: no such {what} folder")
    try:
        return (folder / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise IndexError_(f"{folder}: not an {what} folder (no {MANIFEST})") from None
    except OSError as exc:
        raise IndexError_(f"{folder / MANIFEST}: cannot read ({exc.strerror or exc})") from None


def read_manifest(folder: str | os.PathLike, what: str = "embedkit index") -> dict:
    """The current manifest of ``folder``, or one clear line saying why the folder is not an index."""
    folder = Path(folder)
    return parse_manifest(_read_raw(folder, what), folder / MANIFEST)


def generation_of(meta: dict) -> str:
    """The save a manifest belongs to (format 1 manifests have no ``generation``: their FAISS file names it)."""
    return str(meta.get("generation") or meta.get("roles", {}).get("faiss"))


# ---------------------------------------------------------------------------------------------- readers


class Generation:
    """One complete generation of a folder, held open (see the module docstring)."""

    def __init__(self, folder: Path, manifest: dict, fds: dict[str, int]):
        self.folder, self.manifest, self._fds = folder, manifest, fds
        self.missing = [name for name, fd in fds.items() if fd < 0]

    @property
    def generation(self) -> str:
        return generation_of(self.manifest)

    def path(self, name: str) -> str:
        """A path that opens the generation's file ``name``, even after a writer removed the name."""
        fd = self._fds.get(name, -1)
        if fd >= 0 and _FD_DIR.is_dir():
            return str(_FD_DIR / str(fd))
        return str(self.folder / name)

    def display(self, name: str) -> Path:
        """The name to show in messages."""
        return self.folder / name

    def problems(self, names: Iterable[str] | None = None) -> list[str]:
        """One line per file (of ``names``, default all) that is missing or differs from the manifest in
        size or SHA-256."""
        out = []
        for name in self.manifest["files"] if names is None else names:
            record, fd = self.manifest["files"][name], self._fds[name]
            if fd < 0:
                out.append(f"{self.display(name)}: missing (the index folder is incomplete)")
                continue
            size = os.fstat(fd).st_size
            if size != record["bytes"]:
                out.append(f"{self.display(name)}: truncated or overwritten ({size} bytes, the manifest says "
                           f"{record['bytes']})")
            elif _sha256_fd(fd) != record["sha256"]:
                out.append(f"{self.display(name)}: checksum mismatch (the file is corrupt)")
        return out

    def check_sizes(self, names: Iterable[str]) -> None:
        """Refuse a file whose size differs from the manifest's (cheap: for files mapped, not read)."""
        for name in names:
            size, expected = os.fstat(self._fds[name]).st_size, self.manifest["files"][name]["bytes"]
            if size != expected:
                raise IndexError_(f"{self.display(name)}: truncated or overwritten ({size} bytes, the manifest "
                                  f"says {expected})")

    def check(self, names: Iterable[str] | None = None) -> None:
        """Raise on the first problem of :meth:`problems`."""
        problems = self.problems(names)
        if problems:
            raise IndexError_(problems[0])

    def close(self) -> None:
        for fd in self._fds.values():
            if fd >= 0:
                os.close(fd)
        self._fds = {name: -1 for name in self._fds}


def _sha256_fd(fd: int) -> str:
    h = hashlib.sha256()
    offset = 0
    while block := os.pread(fd, _BLOCK, offset):
        h.update(block)
        offset += len(block)
    return h.hexdigest()


@contextmanager
def open_generation(folder: str | os.PathLike, what: str = "embedkit index",
                    allow_missing: bool = False) -> Iterator[Generation]:
    """The folder's current generation with every file open; retries while writers switch generations.

    ``allow_missing``: a file that is missing while the manifest stays the same is reported in
    ``Generation.missing`` (for ``verify``) instead of raising.
    """
    folder = Path(folder)
    for _ in range(_RETRIES):
        raw = _read_raw(folder, what)
        meta = parse_manifest(raw, folder / MANIFEST)
        fds: dict[str, int] = {}
        switched = False
        try:
            for name in meta["files"]:
                try:
                    fds[name] = os.open(folder / name, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    fds[name] = -1
                except OSError as exc:
                    raise IndexError_(f"{folder / name}: cannot open ({exc.strerror or exc})") from None
            if any(fd < 0 for fd in fds.values()):
                switched = _read_raw(folder, what) != raw
        except BaseException:
            Generation(folder, meta, fds).close()
            raise
        if switched:  # a writer replaced the manifest and deleted its files while we opened them
            Generation(folder, meta, fds).close()
            time.sleep(0.001)
            continue
        generation = Generation(folder, meta, fds)
        try:
            if generation.missing and not allow_missing:
                raise IndexError_(f"{folder / generation.missing[0]}: missing (the index folder is incomplete)")
            yield generation
        finally:
            generation.close()
        return
    raise IndexError_(f"{folder}: the index changed {_RETRIES} times while it was being opened; try again")


# ---------------------------------------------------------------------------------------------- writers


def leftovers(folder: Path, manifest: dict | None) -> list[Path]:
    """Generation files and temporary manifests that no manifest names: what crashed saves left behind."""
    named = set(manifest["files"]) if manifest else set()
    return [path for path in sorted(folder.iterdir()) if path.name.startswith(_TEMP_PREFIX)
            or (path.name.startswith(GENERATION_PREFIXES) and path.name not in named)]


def switch_manifest(folder: Path, manifest: dict) -> None:
    """Replace ``folder``'s manifest atomically: a temporary file, flushed, then ``os.replace``."""
    tmp = folder / f"{_TEMP_PREFIX}{secrets.token_hex(4)}.tmp"
    out = NewFile(tmp)
    try:
        out.write(json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8") + b"\n")
        out.close()
        os.replace(tmp, folder / MANIFEST)
    except BaseException:
        out.abandon()
        tmp.unlink(missing_ok=True)
        raise


def check_writable_target(folder: Path) -> None:
    """Refuse to write an index into a file or into a folder that holds something else."""
    if folder.exists() and not folder.is_dir():
        raise IndexError_(f"{folder}: exists and is not a folder")
    if folder.is_dir() and not (folder / MANIFEST).is_file() and any(
            p.name != LOCK_FILE for p in folder.iterdir()):
        raise IndexError_(f"{folder}: not empty and not an embedkit index; refusing to write into it")


def refuse_legacy_bm25(folder: Path) -> None:
    if (folder / LEGACY_BM25_MANIFEST).exists():
        raise IndexError_(f"{folder}: saved by an older embedkit (index format 1, BM25 under {LEGACY_BM25_MANIFEST}), "
                          "which this one reads only on the FAISS side; rebuild it with `embedkit index build --force`")


def save_generation(folder: str | os.PathLike, write: Callable[[GenerationWriter, dict | None], dict],
                    expected: str | None = None, wait: float | None = DEFAULT_WAIT) -> dict:
    """Write one new generation of ``folder`` under its writer lock; returns the new manifest.

    ``write(out, current)`` writes the data files through ``out`` and returns the new manifest without
    ``files`` and ``generation`` (added here). ``current`` is the manifest being replaced (None for a new
    folder). ``expected``: the generation the caller loaded; if another writer saved since, nothing is
    written (the caller's changes were made to an older state and would undo the other writer's).
    An ``OSError`` (disk full, I/O error) becomes one ``IndexError_`` line; the previous state stays.
    """
    folder = Path(folder)
    check_writable_target(folder)
    with writer_lock(folder, wait):
        if expected is not None:  # an update would keep a BM25 side it cannot read; a new index replaces it
            refuse_legacy_bm25(folder)
        current = read_manifest(folder) if (folder / MANIFEST).is_file() else None
        if expected is not None and current is not None and generation_of(current) != expected:
            raise IndexError_(f"{folder}: another writer saved the index after it was loaded here (generation "
                              f"{generation_of(current)}, loaded {expected}); saving would undo that writer's "
                              "changes: load it again and redo yours (IndexFolder.update holds the lock from "
                              "load to save)")
        for path in leftovers(folder, current):
            _remove(path)
        out = GenerationWriter(folder)
        try:
            manifest = write(out, current)
            kept = {name: current["files"][name] for name in manifest.pop("keep_files", ())} if current else {}
            manifest = {**manifest, "generation": out.generation, "files": {**kept, **out.records}}
            fsync_dir(folder)  # the new files' names are on disk before the manifest names them
            switch_manifest(folder, manifest)
        except BaseException as exc:
            if _current_generation(folder) == out.generation:  # interrupted (Ctrl-C) just after the switch
                raise
            out.discard()
            if isinstance(exc, OSError):
                raise IndexError_(f"{folder}: could not save: {_describe(exc)}; the index is unchanged") from None
            raise
        try:  # the switch reaches the disk before the files it replaced go: a power cut finds one or the other
            fsync_dir(folder)
        except OSError as exc:
            raise IndexError_(f"{folder}: saved, but the folder could not be flushed to disk: {_describe(exc)}; "
                              "the previous generation's files are kept in case the switch is lost") from None
        for name in set(current["files"]) - set(manifest["files"]) if current else ():
            _remove(folder / name)
        if (folder / LEGACY_BM25_MANIFEST).exists():  # a rebuild over format 1: its BM25 files were leftovers
            _remove(folder / LEGACY_BM25_MANIFEST)
    return manifest


def _current_generation(folder: Path) -> str | None:
    try:
        return generation_of(read_manifest(folder))
    except IndexError_:
        return None


def _describe(exc: OSError) -> str:
    where = f" ({Path(exc.filename).name})" if isinstance(exc.filename, str) else ""
    return f"{exc.strerror or exc}{where}"
