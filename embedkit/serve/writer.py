"""The one write path of a served index: validate, log durably, apply, acknowledge; checkpoint now and then.

Durability by write-ahead log, not by saving the index on every write. A save rewrites the whole
folder (every vector, every document, their checksums: O(index) per write, 15 MB for SciFact, gigabytes
at a million vectors), while a log append is O(change) plus one ``fdatasync``. Writes that arrive
while a commit is running are committed together (group commit: one append, one sync, one BM25
rebuild), so the sync's cost is shared under load. A change is acknowledged only after its log line is
on disk; kill -9 at any moment loses nothing acknowledged, and a start replays the log over the last
checkpoint before it serves (:mod:`embedkit.serve.wal`).

A checkpoint saves the index folder the crash-safe way the index layer always does (a new generation
of files, then the manifest switch) and then empties the log. Replaying changes the checkpoint already
holds is harmless, because every change is idempotent (:mod:`embedkit.serve.state`), so a crash
between the save and the emptying needs no care. Checkpoints happen when the log passes
``checkpoint_bytes``, at start when the log was not empty, and at a clean stop.

The folder's writer lock is held for the server's lifetime (see docs/serve.md): the served state in
memory plus the log is the truth, and another writer working from the last checkpoint would either be
overwritten by the next checkpoint or overwrite acknowledged writes.
"""
from __future__ import annotations

import asyncio
import fcntl
from collections import Counter
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from embedkit.errors import IndexError_
from embedkit.index.faiss_index import COMPACT_FRACTION, saved_documents_checksum
from embedkit.serve.errors import ApiError
from embedkit.serve.state import Delete, ServedIndex, Upsert
from embedkit.serve.wal import WriteAheadLog

log = logging.getLogger("embedkit.serve")


@contextmanager
def folder_writer_lock(folder: Path) -> Iterator[None]:
    """Exclusive write access to an index folder, refused at once (with the holder) when taken."""
    path = Path(folder) / ".serve.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise IndexError_(f"{folder}: another writer holds the index ({holder}); stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} (embedkit serve)\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def checkpoint(served: ServedIndex, folder: Path) -> None:
    """Save the served state into its folder (FAISS, then BM25 paired with it)."""
    dense = served.dense
    if dense.info()["marked_deleted"] >= COMPACT_FRACTION * max(dense.faiss_index.ntotal, 1):
        served.compact()
    dense.save(folder, compact=False)  # reads only: searches go on
    if served.bm25 is not None:
        served.bm25.save(folder, paired_with=saved_documents_checksum(folder))


def recover(served: ServedIndex, wal: WriteAheadLog, folder: Path) -> int:
    """Replay the log over the loaded checkpoint and fold it in; returns the number of changes replayed."""
    changes = wal.replay()
    if changes:
        served.apply(changes)
        checkpoint(served, folder)
    wal.clear()  # also drops a torn tail when nothing was replayed
    return len(changes)


@dataclass
class _Pending:
    mode: str  # add | upsert | delete
    change: Upsert | Delete
    future: asyncio.Future


class IndexWriter:
    """Serialises the writes of one served index (see the module docstring)."""

    def __init__(self, served: ServedIndex, folder: Path, checkpoint_bytes: int,
                 observe_commit: Callable[[str, int, float], None] | None = None):
        self.served, self.folder, self.checkpoint_bytes = served, Path(folder), checkpoint_bytes
        self.wal = WriteAheadLog(folder)
        self.failure: str | None = None  # set when a logged change could not be applied: writes stop
        self._observe = observe_commit
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"embedkit-write-{served.name}")
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._lock = None  # the writer lock's context, entered and left on the writer's thread

    def open(self) -> int:
        """Take the folder's writer lock, replay and fold in the log, open it for appending; returns the
        number of changes replayed. All of it runs on the writer's own thread, which holds the lock until
        :meth:`close`: every later save (a checkpoint) happens on that thread too."""
        return self._executor.submit(self._open).result()

    def _open(self) -> int:
        self._lock = folder_writer_lock(self.folder)
        self._lock.__enter__()
        try:
            replayed = recover(self.served, self.wal, self.folder)
            self.wal.open()
        except BaseException:
            self._release()
            raise
        return replayed

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._commit_loop())

    async def stop(self) -> None:
        """Commit what is queued, then :meth:`close`."""
        await self._queue.put(None)
        await self._task
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def close(self) -> None:
        """Checkpoint if the log holds anything, close it, release the lock (on the writer's thread)."""
        def close() -> None:
            try:
                if self.failure is None and self.wal.size():
                    self._checkpoint()
            finally:
                self.wal.close()
                self._release()

        if self._lock is not None:
            self._executor.submit(close).result()
        self._executor.shutdown()

    def _release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.__exit__(None, None, None)

    async def submit(self, mode: str, change: Upsert | Delete) -> dict:
        if self.failure is not None:
            raise ApiError(503, f"writes to index {self.served.name!r} are stopped: {self.failure}")
        pending = _Pending(mode, change, asyncio.get_running_loop().create_future())
        await self._queue.put(pending)
        return await pending.future

    async def _commit_loop(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                return
            group = [first]
            while not self._queue.empty():  # everything that queued while the last commit ran
                pending = self._queue.get_nowait()
                if pending is None:
                    stopping = True
                    break
                group.append(pending)
            outcomes = await loop.run_in_executor(self._executor, self._commit, group)
            for pending, outcome in zip(group, outcomes):
                if pending.future.done():  # the client went away
                    continue
                if isinstance(outcome, BaseException):
                    pending.future.set_exception(outcome)
                else:
                    pending.future.set_result(outcome)
            if self.failure is None and self.wal.size() >= self.checkpoint_bytes:  # after the acknowledgements
                await loop.run_in_executor(self._executor, self._checkpoint)

    def _commit(self, group: list[_Pending]) -> list[dict | BaseException]:
        """On the writer thread: check each write against the state and the writes before it, log the
        accepted ones with one sync, apply them as one step, and say what each did."""
        outcomes: list[dict | BaseException] = []
        accepted: list[_Pending] = []
        present: dict[str, int] = {}  # document id -> rows it has after the accepted writes so far

        def rows(doc_id: str) -> int:
            if doc_id not in present:
                present[doc_id] = len(self.served.rows_of(doc_id))
            return present[doc_id]

        for p in group:
            ids = [d.id for d in p.change.documents] if isinstance(p.change, Upsert) else p.change.ids
            if p.mode == "add" and (clash := [i for i in ids if rows(i)]):
                outcomes.append(ApiError(409, f"documents already in index {self.served.name!r}: "
                                         f"{', '.join(map(repr, clash[:5]))} (use mode 'upsert' to replace them)",
                                         "documents"))
                continue
            if p.mode == "delete" and (missing := [i for i in ids if not rows(i)]):
                outcomes.append(ApiError(404, f"no document {missing[0]!r} in index {self.served.name!r}"))
                continue
            before = {i: rows(i) for i in ids}
            if isinstance(p.change, Upsert):
                after = Counter(x.parent or x.id for x in p.change.rows)
                present.update((i, after[i]) for i in ids)
                outcomes.append({"documents": len(ids), "added": sum(1 for i in ids if not before[i]),
                                 "replaced": sum(1 for i in ids if before[i]), "rows": len(p.change.rows)})
            else:
                present.update((i, 0) for i in ids)
                outcomes.append({"deleted": ids, "rows_removed": sum(before.values())})
            accepted.append(p)
        if not accepted:
            return outcomes
        started = time.perf_counter()
        changes = [p.change for p in accepted]
        try:
            self.wal.append(changes)
        except OSError as exc:
            log.error("index %s: could not log %d change(s): %s", self.served.name, len(changes), exc)
            error = ApiError(503, f"could not write the log of index {self.served.name!r} ({exc.strerror or exc}); "
                                  "nothing was changed")
            return [error if p in accepted else o for p, o in zip(group, outcomes)]
        try:
            self.served.apply(changes)
        except Exception as exc:  # logged but not applied: serving on would contradict the log
            log.exception("index %s: a logged change could not be applied; writes stop", self.served.name)
            self.failure = f"a logged change could not be applied ({exc}); restart the server to replay the log"
            error = ApiError(503, self.failure)
            return [error if p in accepted else o for p, o in zip(group, outcomes)]
        if self._observe is not None:
            self._observe(self.served.name, len(changes), time.perf_counter() - started)
        version, count = self.served.version, self.served.count()
        for o in outcomes:
            if isinstance(o, dict):
                o.update(index=self.served.name, version=version, count=count)
        return outcomes

    def _checkpoint(self) -> None:
        started = time.perf_counter()
        checkpoint(self.served, self.folder)
        self.wal.clear()
        log.info("index %s: checkpoint in %.2f s", self.served.name, time.perf_counter() - started)
