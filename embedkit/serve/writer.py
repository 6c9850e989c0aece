"""The one write path of a served index, and how it shares its folder with other writers (the CLI).

Durability by write-ahead log, not by saving the index on every write. A save rewrites the whole
folder (every vector, every document, their checksums: O(index) per write, 15 MB for SciFact, gigabytes
at a million vectors), while a log append is O(change) plus one ``fdatasync``. Writes that arrive
while a commit is running are committed together (group commit: one append, one sync, one BM25
rebuild), so the sync's cost is shared under load. A change is acknowledged only after its log line is
on disk; kill -9 at any moment loses nothing acknowledged, and whoever next takes the folder's writer
lock in a server replays the log before it writes (:mod:`embedkit.serve.wal`).

Sharing the folder. The server writes under the folder's writer lock (:mod:`embedkit.index.lock`, the
lock every ``embedkit index`` writer takes) and holds it only while it has writes that are logged but
not yet saved: from the first write after a quiet spell until the checkpoint that follows
(``checkpoint_seconds`` later, or sooner once the log passes ``checkpoint_bytes``, or at a clean stop).
A checkpoint saves the served state through :class:`~embedkit.index.IndexFolder` (a new generation,
one manifest switch), empties the log and lets the lock go. Meanwhile a CLI writer waits (``--wait``)
or fails with the lock's one-line error naming the server; between holds it writes freely. Before the
server writes again it takes the lock and, if another writer saved a newer generation, loads it first,
so neither side undoes the other. A server that is not writing looks at the folder's manifest every
``poll_seconds`` and loads a newer generation when one appears: its searches are always over one
complete generation (pinned while it is served) plus its own acknowledged writes.

Replaying changes a checkpoint already holds is harmless, because every change is idempotent
(:mod:`embedkit.serve.state`), so a crash between the save and the emptying needs no care.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from embedkit.errors import EmbedkitError
from embedkit.index import IndexFolder, IndexLockedError, writer_lock
from embedkit.index.faiss_index import COMPACT_FRACTION
from embedkit.serve.errors import ApiError
from embedkit.serve.state import Delete, ServedIndex, Upsert
from embedkit.serve.wal import WriteAheadLog

log = logging.getLogger("embedkit.serve")


@dataclass(frozen=True)
class WriterOptions:
    checkpoint_bytes: int  # save and let the lock go once the log is this large ...
    checkpoint_seconds: float  # ... or this long after the first unsaved write
    lock_wait: float  # how long a write waits for another writer of the folder before a 503
    poll_seconds: float  # how often an idle server looks for a generation another writer saved


@dataclass
class _Pending:
    mode: str  # add | upsert | delete
    change: Upsert | Delete
    future: asyncio.Future


class IndexWriter:
    """Keeps one served index in step with its folder and serialises its writes (see the module docstring).

    Everything that touches the folder, the log or the lock runs on this writer's one thread (the lock is
    held per thread)."""

    def __init__(self, served: ServedIndex, folder: Path, options: WriterOptions,
                 observe_commit: Callable[[str, int, float], None] | None = None):
        self.served, self.folder, self.options = served, Path(folder), options
        self.wal = WriteAheadLog(folder)
        self.failure: str | None = None  # set when a logged change could not be applied: writes stop
        self._observe = observe_commit
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"embedkit-write-{served.name}")
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._lock: AbstractContextManager | None = None  # the folder's writer lock while held
        self._deadline = 0.0  # time.monotonic() by which the current hold checkpoints

    @property
    def holding(self) -> bool:
        return self._lock is not None

    def open(self) -> int:
        """Fold in a log that a crashed server left (under the lock, which is then let go); returns the
        number of changes replayed."""
        def fold_in() -> int:
            if not self.wal.size():
                return 0
            replayed = self._hold()  # also cuts off a torn tail
            if replayed:
                self._checkpoint_and_release()
            else:
                self._release()
            return replayed

        return self._executor.submit(fold_in).result()

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._commit_loop())

    async def stop(self) -> None:
        """Commit what is queued, then :meth:`close`."""
        await self._queue.put(None)
        await self._task
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def close(self) -> None:
        """Save what the log holds and let the lock go (on the writer's thread)."""
        def close() -> None:
            if self.holding:
                if self.failure is None:
                    self._checkpoint_and_release()
                else:  # the log stays for the next start to replay
                    self._release()

        self._executor.submit(close).result()
        self._executor.shutdown()

    async def submit(self, mode: str, change: Upsert | Delete) -> dict:
        if self.failure is not None:
            raise ApiError(503, f"writes to index {self.served.name!r} are stopped: {self.failure}")
        pending = _Pending(mode, change, asyncio.get_running_loop().create_future())
        await self._queue.put(pending)
        return await pending.future

    # ------------------------------------------------------------------ the commit loop (event loop side)

    async def _commit_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = self.holding and self.failure is None  # a checkpoint is coming (writes stopped: none is)
            quiet = max(self._deadline - time.monotonic(), 0.0) if due else self.options.poll_seconds
            try:
                first = await asyncio.wait_for(self._queue.get(), quiet)
            except TimeoutError:  # a quiet spell: checkpoint a hold that is due, or look for a newer generation
                await loop.run_in_executor(self._executor, self._quiet)
                continue
            if first is None:
                return
            group, stopping = [first], False
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
            if stopping:
                return
            if self.holding and self.failure is None and (  # after the acknowledgements
                    self.wal.size() >= self.options.checkpoint_bytes or time.monotonic() >= self._deadline):
                await loop.run_in_executor(self._executor, self._checkpoint_and_release)

    # ------------------------------------------------------------------ the writer's thread

    def _quiet(self) -> None:
        if self.holding:
            if self.failure is None and time.monotonic() >= self._deadline:
                self._checkpoint_and_release()
        else:
            try:
                self._catch_up()
            except EmbedkitError as exc:  # a damaged or vanished folder: keep serving what is loaded
                log.warning("index %s: cannot load the folder's newest state: %s", self.served.name, exc)

    def _commit(self, group: list[_Pending]) -> list[dict | BaseException]:
        """Check each write against the state and the writes before it, log the accepted ones with one
        sync, apply them as one step, and say what each did."""
        if not self.holding:
            try:
                self._hold()
            except IndexLockedError as exc:
                return [ApiError(503, f"{exc}; nothing was changed, try again", headers={"Retry-After": "1"})] * len(group)
            except EmbedkitError as exc:
                return [ApiError(503, f"index {self.served.name!r}: {exc}; nothing was changed")] * len(group)
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

    def _hold(self) -> int:
        """Take the folder's writer lock, bring the served state up to the folder's newest (replaying a log
        a crashed server left), and open the log for appending; returns the changes replayed."""
        lock = writer_lock(self.folder, self.options.lock_wait, replays_server_log=True)
        lock.__enter__()
        try:
            self._catch_up()
            changes = self.wal.replay()
            if changes:
                self.served.apply(changes)
                log.info("index %s: replayed %d logged change(s)", self.served.name, len(changes))
            self.wal.open()
        except BaseException:
            lock.__exit__(None, None, None)
            raise
        self._lock, self._deadline = lock, time.monotonic() + self.options.checkpoint_seconds
        if changes:
            self._deadline = 0.0  # save the replayed changes as soon as this commit is done
        return len(changes)

    def _catch_up(self) -> None:
        """Load the folder's current generation if another writer saved one since this state was loaded."""
        if IndexFolder.current_generation(self.folder) != self.served.generation:
            self.served.replace(IndexFolder.load(self.folder))
            log.info("index %s: loaded generation %s, saved by another writer", self.served.name,
                     self.served.generation)

    def _checkpoint_and_release(self) -> None:
        """Save the served state as a new generation, empty the log, let the lock go. If the save fails
        (disk full), the log keeps the writes and the lock stays held; the next quiet spell tries again."""
        started = time.perf_counter()
        try:
            dense = self.served.dense
            if dense.info()["marked_deleted"] >= COMPACT_FRACTION * max(dense.faiss_index.ntotal, 1):
                self.served.compact()  # under the served lock: searches wait while the graph is replaced
            saved = IndexFolder(dense, self.served.bm25)
            saved.save(self.folder, wait=self.options.lock_wait, compact=False)  # reads only: searches go on
            self.served.generation = saved.generation
            self.wal.clear()
        except EmbedkitError as exc:
            log.error("index %s: checkpoint failed, the log keeps the writes: %s", self.served.name, exc)
            self._deadline = time.monotonic() + self.options.checkpoint_seconds
            return
        log.info("index %s: checkpoint in %.2f s (generation %s)", self.served.name,
                 time.perf_counter() - started, self.served.generation)
        self._release()

    def _release(self) -> None:
        lock, self._lock = self._lock, None
        self.wal.close()
        if lock is not None:
            lock.__exit__(None, None, None)
