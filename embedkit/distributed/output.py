"""The folder a distributed encode writes: Parquet shards of ``(id, embedding)``, one per part, in input order.

Layout of ``DIR``::

    manifest.json           the run's identity (input checksum, model fingerprint, prompt, options),
                            the parts (file, first and last row), and, once every part is written,
                            ``complete: true`` with the row count and the width
    part-00000.parquet      rows 0..k-1: ``id`` (string), ``embedding`` (fixed-size list of float32)
    part-00001.parquet      ...

Each part file is written under a temporary name and renamed when whole, so a file that exists is
complete; its Parquet metadata carries the identity's hash and its part number, so a rerun can tell a
finished part of *this* run from a stale one. Reading needs only pyarrow (not Ray): ``embedkit index
build --embeddings DIR`` reads these folders on any machine.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from embedkit.atomic import write_json_atomic
from embedkit.errors import DataError

FORMAT = "embedkit-embeddings"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
META_KEY = b"embedkit"


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def identity_hash(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def write_part(folder: Path, index: int, ids: list[str], embeddings: np.ndarray, identity_sha: str) -> Path:
    """Write one part's rows atomically (temporary file, fsync, rename)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, dim = embeddings.shape
    flat = pa.array(np.ascontiguousarray(embeddings, dtype=np.float32).reshape(-1), type=pa.float32())
    table = pa.table({"id": pa.array(ids, type=pa.string()),
                      "embedding": pa.FixedSizeListArray.from_arrays(flat, dim)})
    table = table.replace_schema_metadata({META_KEY: json.dumps({"identity": identity_sha, "part": index,
                                                                 "rows": rows}).encode()})
    target = folder / part_name(index)
    tmp = folder / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f)  # the embedding column compresses little; the ids do
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def finished_part(folder: Path, index: int, rows: int, identity_sha: str) -> bool:
    """Whether ``part-<index>`` exists, was written by a run with this identity, and holds ``rows`` rows."""
    import pyarrow.parquet as pq

    path = folder / part_name(index)
    if not path.is_file():
        return False
    try:
        metadata = pq.read_metadata(path)
        meta = json.loads((metadata.metadata or {}).get(META_KEY, b"{}"))
    except (OSError, ValueError):
        return False
    return meta.get("identity") == identity_sha and meta.get("part") == index and metadata.num_rows == rows


def remove_temporaries(folder: Path) -> None:
    for tmp in folder.glob(".part-*.tmp"):
        tmp.unlink(missing_ok=True)


def remove_parts(folder: Path) -> None:
    for path in folder.glob("part-*.parquet"):
        path.unlink(missing_ok=True)
    remove_temporaries(folder)


def read_manifest(folder: Path) -> dict | None:
    """The manifest of an embeddings folder, None when there is none; refuses a folder that is not one."""
    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"unreadable manifest ({exc})", path=path) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"not an embedkit embeddings manifest (format {FORMAT!r})", path=path)
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise DataError(f"format version {manifest['format_version']} is newer than this embedkit reads "
                        f"({FORMAT_VERSION}); upgrade embedkit", path=path)
    return manifest


def write_manifest(folder: Path, manifest: dict) -> None:
    write_json_atomic(folder / MANIFEST, {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest})


@dataclass(frozen=True)
class EmbeddingsFolder:
    """A complete embeddings folder, read part by part (memory: one part at a time)."""
    path: Path
    manifest: dict

    @classmethod
    def open(cls, path: str | os.PathLike) -> "EmbeddingsFolder":
        folder = Path(path)
        if not folder.is_dir():
            raise DataError("no such embeddings folder (expected the --out DIR of `embedkit encode --ray`)",
                            path=folder)
        manifest = read_manifest(folder)
        if manifest is None:
            raise DataError(f"no {MANIFEST}: not an embeddings folder written by `embedkit encode --ray`",
                            path=folder)
        if not manifest.get("complete"):
            raise DataError("the encode that writes this folder has not finished (run the same command again "
                            "to resume it)", path=folder)
        return cls(folder, manifest)

    @property
    def count(self) -> int:
        return int(self.manifest["rows"])

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def model(self) -> dict:
        return self.manifest.get("model") or {}

    def part_paths(self) -> list[Path]:
        return [self.path / p["file"] for p in self.manifest["parts"]]

    def iter_parts(self) -> Iterator[tuple[list[str], np.ndarray]]:
        """``(ids, embeddings)`` for each part in input order (embeddings float32, ``(rows, dim)``)."""
        for part, path in zip(self.manifest["parts"], self.part_paths()):
            ids, vectors = read_part_file(path, self.dim)
            if len(ids) != part["stop"] - part["start"]:
                raise DataError(f"holds {len(ids)} rows, the manifest says {part['stop'] - part['start']}; the "
                                "folder is damaged", path=path)
            yield ids, vectors

    def ids(self) -> list[str]:
        """Every id, in input order (the id column alone is read)."""
        import pyarrow.parquet as pq

        out: list[str] = []
        for path in self.part_paths():
            out.extend(pq.read_table(path, columns=["id"]).column("id").to_pylist())
        return out

    def vectors(self) -> "PartRows":
        """A read-only view of all embeddings, read part by part on demand (see :class:`PartRows`)."""
        return PartRows(self)

    def load(self) -> tuple[list[str], np.ndarray]:
        """Every id and embedding at once (for inputs that fit in memory)."""
        out = np.empty((self.count, self.dim), dtype=np.float32)
        ids: list[str] = []
        for part_ids, vectors in self.iter_parts():
            out[len(ids):len(ids) + len(part_ids)] = vectors
            ids.extend(part_ids)
        return ids, out


def read_part_file(path: Path, dim: int) -> tuple[list[str], np.ndarray]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=["id", "embedding"])
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"unreadable part ({str(exc).splitlines()[0]})", path=path) from None
    column = table.column("embedding").combine_chunks()
    flat = column.flatten().to_numpy(zero_copy_only=False)
    if flat.size != table.num_rows * dim:
        raise DataError(f"embeddings are not {dim} wide", path=path)
    return table.column("id").to_pylist(), flat.astype(np.float32, copy=False).reshape(table.num_rows, dim)


class PartRows:
    """The embeddings of a folder as a 2-d array-like: ``len``, ``shape``, ``ndim``, and rows by slice or
    by an array of row numbers, read from the part files that hold them (the last part read is kept).

    What :func:`embedkit.index.build_from_vectors` reads an index's vectors from (it also takes arrays and
    ``.npy`` rows), so a folder larger than memory is indexed a slice at a time.
    """

    def __init__(self, folder: EmbeddingsFolder):
        self.folder = folder
        self.starts = np.array([p["start"] for p in folder.manifest["parts"]], dtype=np.int64)
        self.shape = (folder.count, folder.dim)
        self.ndim = 2
        self._cached: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def _part(self, index: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != index:
            path = self.folder.part_paths()[index]
            self._cached = (index, read_part_file(path, self.folder.dim)[1])
        return self._cached[1]

    def __getitem__(self, rows) -> np.ndarray:
        if isinstance(rows, slice):
            start, stop, step = rows.indices(len(self))
            rows = np.arange(start, stop, step)
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.folder.dim), dtype=np.float32)
        parts = np.searchsorted(self.starts, rows, side="right") - 1
        for part in np.unique(parts):
            where = parts == part
            out[where] = self._part(int(part))[rows[where] - self.starts[part]]
        return out
