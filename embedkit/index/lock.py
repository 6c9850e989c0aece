"""One writer at a time per index folder: an advisory ``fcntl.flock`` on ``<folder>/writer.lock``.

Every path that writes an index folder (``FaissIndex.save``, ``IndexFolder.save`` / ``update``, the
``embedkit index`` commands) holds this lock; readers never take it (they read a complete generation
without it, see :mod:`embedkit.index.storage`). The kernel drops a ``flock`` when its holder exits or is
killed, so a crashed writer never leaves the folder locked, and the lock file itself is never deleted
(deleting a lock file lets two processes lock two different files).

The holder writes its pid, command line and start time into the lock file, so a writer that gives up
can say who holds the folder. Within one process the lock is re-entrant for the thread that holds it
(``IndexFolder.update`` holds it and calls ``save``, which takes it again) and exclusive between threads,
so a server that writes from several threads is serialised too.

A server (``embedkit serve``) keeps acknowledged writes in a log in the folder (``SERVER_LOG``) until it
saves them. If it dies first, the next server to take the lock replays that log; any other writer is
refused while the log holds writes, because saving its own changes first would put the server's older
writes on top of them when the log is replayed (a later write to the same document undone).

Hand-written rather than the ``filelock`` package: that package offers no holder information and is not
re-entrant per folder across the objects of one process.
"""
from __future__ import annotations

import fcntl
import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from embedkit.errors import IndexError_

LOCK_FILE = "writer.lock"
SERVER_LOG = "serve-wal.jsonl"  # embedkit.serve's write-ahead log; named here so that writers can see it
DEFAULT_WAIT = 5.0  # seconds a writer waits for another before giving up (``--wait``)
_POLL = (0.001, 0.05)  # first and longest pause between attempts while waiting


class IndexLockedError(IndexError_):
    """Another writer held the index folder for longer than the caller was willing to wait."""


class _FolderLock:
    """This process's hold on one folder: a thread lock (exclusive between threads, re-entrant in one)
    plus the file descriptor that carries the ``flock`` while ``depth`` > 0."""

    def __init__(self) -> None:
        self.thread_lock = threading.RLock()
        self.depth = 0
        self.fd = -1


_held: dict[str, _FolderLock] = {}
_held_guard = threading.Lock()


def _forget_holds_in_child() -> None:
    """A forked child holds none of its parent's locks: it closes its copies of their descriptors (which
    would otherwise keep the flock alive after the parent lets go) and starts with an empty registry."""
    global _held, _held_guard
    for held in _held.values():
        if held.fd >= 0:
            os.close(held.fd)
    _held, _held_guard = {}, threading.Lock()


os.register_at_fork(after_in_child=_forget_holds_in_child)


def _folder_lock(folder: Path) -> _FolderLock:
    key = os.path.realpath(folder)
    with _held_guard:
        return _held.setdefault(key, _FolderLock())


def _holder(fd: int) -> str:
    """Who holds the lock, from what the holder wrote into the lock file (best effort)."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return f"pid {int(info['pid'])}, `{info['command']}`, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):  # the holder has not written its details yet
        return "another process"


def _command_line() -> str:
    command = " ".join(sys.argv) if sys.argv and sys.argv[0] else sys.executable
    command = command.replace("\n", " ")
    return command if len(command) <= 200 else command[:197] + "..."


def _lock_file(folder: Path, deadline: float | None, wait: float | None) -> int:
    """Open and ``flock`` the lock file, trying until ``deadline`` (``time.monotonic``; None: forever)."""
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        if deadline is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            pause = _POLL[0]
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise IndexLockedError(
                            f"{folder}: another writer holds the index ({_holder(fd)}); gave up after {wait:g} s "
                            "(wait longer with --wait SECONDS, or wait=... in Python)") from None
                    time.sleep(min(pause, left))
                    pause = min(pause * 2, _POLL[1])
        details = json.dumps({"pid": os.getpid(), "command": _command_line(),
                              "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, details, 0)
        return fd
    except BaseException:
        os.close(fd)
        raise


@contextmanager
def writer_lock(folder: str | os.PathLike, wait: float | None = DEFAULT_WAIT,
                replays_server_log: bool = False) -> Iterator[None]:
    """Hold the writer lock of ``folder`` (created if absent) for the duration of the block.

    ``wait``: seconds to wait for another writer (``None`` waits as long as it takes, ``0`` tries once);
    past it, :class:`IndexLockedError` names the folder and the holder. Re-entrant within a thread.
    A folder whose server log holds unsaved writes is refused (see the module docstring) unless the
    caller is a server that replays that log (``replays_server_log``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    held = _folder_lock(folder)
    deadline = None if wait is None else time.monotonic() + max(wait, 0.0)
    if not held.thread_lock.acquire(timeout=-1 if wait is None else max(wait, 0.0)):
        raise IndexLockedError(f"{folder}: another thread of this process (pid {os.getpid()}) is writing the "
                               f"index; gave up after {wait:g} s")
    try:
        if held.depth == 0:
            held.fd = _lock_file(folder, deadline, wait)
            if not replays_server_log:
                _refuse_unsaved_server_log(folder, held)
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
            if held.depth == 0:
                _let_go(held)
    finally:
        held.thread_lock.release()


def _let_go(held: _FolderLock) -> None:
    fd, held.fd = held.fd, -1
    try:
        os.ftruncate(fd, 0)  # no stale holder details for the next reader of the file
    finally:
        os.close(fd)  # releases the flock


def _refuse_unsaved_server_log(folder: Path, held: _FolderLock) -> None:
    """Let go of the fresh lock and refuse if a server stopped with writes it had not saved."""
    log = folder / SERVER_LOG
    try:
        pending = log.stat().st_size > 0
    except FileNotFoundError:
        return
    if pending:
        _let_go(held)
        raise IndexLockedError(f"{log}: a server stopped before saving writes it had acknowledged; start "
                               f"`embedkit serve {folder}` once (it saves them at start), then write again")
