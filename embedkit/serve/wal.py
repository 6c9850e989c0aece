"""The write-ahead log of a served index: ``serve-wal.jsonl`` in the index folder.

One line per change, ``<crc32 hex> <json>\\n``; an upsert carries its documents, their FAISS rows and
the rows' vectors (base64 float32), so a replay needs no model and gives exactly the vectors that were
served. A group of changes is appended with one ``write`` and made durable with one ``fdatasync``
before any of them is acknowledged.

A crash can cut the last line short (it was never acknowledged: acknowledgement waits for the sync);
``replay`` drops such a tail. A complete line (one that reached its newline) that fails its checksum is
damage, not a torn append, and the log is refused with the line's number.
"""
from __future__ import annotations

import base64
import json
import os
import zlib
from pathlib import Path

import numpy as np

from embedkit.errors import IndexError_
from embedkit.index.lock import SERVER_LOG
from embedkit.index.storage import fsync_dir
from embedkit.data import Document
from embedkit.serve.state import Delete, Row, Upsert


def encode_change(change: Upsert | Delete) -> bytes:
    if isinstance(change, Upsert):
        vectors = np.ascontiguousarray(change.vectors, dtype="<f4")
        record = {"op": "upsert", "documents": [[d.id, d.title, d.text] for d in change.documents],
                  "rows": [[r.id, r.text, r.title, r.parent] for r in change.rows],
                  "dim": int(vectors.shape[1]), "vectors": base64.b64encode(vectors.tobytes()).decode("ascii")}
    else:
        record = {"op": "delete", "ids": list(change.ids)}
    payload = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return b"%08x " % zlib.crc32(payload) + payload + b"\n"


def decode_change(payload: bytes) -> Upsert | Delete:
    record = json.loads(payload)
    if record["op"] == "delete":
        return Delete([str(i) for i in record["ids"]])
    rows = [Row(*row) for row in record["rows"]]
    vectors = np.frombuffer(base64.b64decode(record["vectors"]), dtype="<f4").reshape(len(rows), record["dim"])
    return Upsert([Document(*row) for row in record["documents"]], rows, vectors.astype(np.float32))


class WriteAheadLog:
    def __init__(self, folder: Path):
        self.path = Path(folder) / SERVER_LOG
        self._fd: int | None = None
        self._complete = 0  # bytes up to the end of the last whole line, as of the last replay

    def replay(self) -> list[Upsert | Delete]:
        """The changes logged since the last checkpoint (a torn last line left out)."""
        if not self.path.exists():
            self._complete = 0
            return []
        data = self.path.read_bytes()
        *lines, torn = data.split(b"\n")  # after the last newline: b"" unless an append was cut short
        self._complete = len(data) - len(torn)
        changes = []
        for number, line in enumerate(lines, 1):
            change = _parse(line)
            if change is None:
                raise IndexError_(f"{self.path}, line {number}: damaged record (checksum or JSON); the log is "
                                  "corrupt, refusing to guess (move the file away to start from the last checkpoint)")
            changes.append(change)
        return changes

    def open(self) -> None:
        """Open for appending, after :meth:`replay`: a torn tail is cut off first, so that the next
        append starts a line of its own."""
        existed = self.path.exists()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if not existed:
            fsync_dir(self.path.parent)
        elif os.fstat(self._fd).st_size > self._complete:
            os.ftruncate(self._fd, self._complete)
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def size(self) -> int:
        if self._fd is not None:
            return os.fstat(self._fd).st_size
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def append(self, changes: list[Upsert | Delete]) -> None:
        """Log ``changes`` durably; on failure the log is cut back to where it was (nothing half-logged)."""
        data = b"".join(encode_change(c) for c in changes)
        before = self.size()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            os.fdatasync(self._fd)
        except BaseException:
            os.ftruncate(self._fd, before)
            os.fsync(self._fd)
            raise

    def clear(self) -> None:
        """Empty the log once a checkpoint holds everything in it."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)
        elif self.path.exists():
            with open(self.path, "r+b") as f:
                f.truncate(0)
                os.fsync(f.fileno())


def _parse(line: bytes) -> Upsert | Delete | None:
    crc, _, payload = line.partition(b" ")
    try:
        if int(crc, 16) != zlib.crc32(payload):
            return None
        return decode_change(payload)
    except (ValueError, KeyError, TypeError, IndexError):
        return None
