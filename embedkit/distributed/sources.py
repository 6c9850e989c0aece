"""Inputs of a distributed encode, cut into fixed parts that any node can read on its own.

Three formats, each a path every node of the cluster can read (local disk for a one-machine cluster,
else shared storage):

- ``text``: one text a line (UTF-8, as ``embedkit encode`` reads it); every line is a row, its id the
  0-based line number (the id :func:`embedkit.data.iter_documents` gives it).
- ``jsonl``: a BEIR corpus (a folder holding ``corpus.jsonl``, or a ``.jsonl`` file): one object a
  non-blank line, ``{"_id", "title"?, "text"}``; the text embedded is title and text joined as
  evaluation and index building join them (:func:`embedkit.data.full_text`).
- ``parquet``: a ``.parquet`` file or a folder of them (name order): the ``text_column``, and the
  ``id_column`` when the files have it (else the 0-based row number).

:func:`plan_input` reads the input once on the driver: its checksum (the identity of a run) and where
every part starts, so each part is read by seeking, not by scanning what comes before it.
:func:`read_part` is what an actor calls. Parts are fixed by row numbers alone, never by the cluster's
size or timing, so a part's embeddings are the same bytes in every run (what makes resuming exact).
"""
from __future__ import annotations

import hashlib
import json
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from embedkit.errors import ConfigError, DataError

# Rows between two recorded offsets; parts are whole numbers of grains. Not smaller: the engine sorts
# texts by length within a part, and on SciFact abstracts parts of 64 rows padded 3.4% more tokens than
# parts of 256 (6.6% against one sort of the whole corpus), which made a one-actor run 3.8% slower.
GRAIN = 256
MAX_PART_ROWS = 16384
TARGET_PARTS = 256
_BLANK = b" \t\n\r\x0b\x0c"


@dataclass(frozen=True)
class Source:
    """What to read and how: the format, its files (in order) and, for Parquet, the columns."""
    format: str
    files: tuple[str, ...]
    text_column: str = "text"
    id_column: str | None = None  # Parquet: None = row numbers

    def as_dict(self) -> dict:
        return {"format": self.format, "files": list(self.files), "text_column": self.text_column,
                "id_column": self.id_column}


@dataclass(frozen=True)
class Part:
    """Rows ``[start, stop)`` of the input; ``where`` says where they are (format-specific, JSON-able)."""
    index: int
    start: int
    stop: int
    where: dict

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass
class InputPlan:
    source: Source
    rows: int
    sha256: str
    rows_per_part: int
    parts: list[Part] = field(default_factory=list)


def default_rows_per_part(rows: int) -> int:
    """About ``TARGET_PARTS`` parts (enough to balance many actors), whole grains, at most 16384 rows.

    A function of the row count only: the same input is always cut the same way, whatever the cluster.
    """
    grains = -(-rows // (GRAIN * TARGET_PARTS))
    return max(GRAIN, min(MAX_PART_ROWS, grains * GRAIN))


def resolve_source(path: str | Path, text_column: str = "text", id_column: str | None = None) -> Source:
    """The :class:`Source` for ``path``; the format follows from the name (a folder: BEIR or Parquet)."""
    from embedkit.paths import resolve_data_path

    local = resolve_data_path(path)
    if local.is_dir():
        if (local / "corpus.jsonl").is_file():
            return Source("jsonl", (str(local / "corpus.jsonl"),))
        files = tuple(str(p) for p in sorted(local.glob("*.parquet")))
        if not files:
            raise DataError("folder has neither corpus.jsonl (BEIR) nor *.parquet files", path=local)
        return _parquet_source(files, text_column, id_column)
    suffix = local.suffix.lower()
    if suffix == ".parquet":
        return _parquet_source((str(local),), text_column, id_column)
    if suffix in (".jsonl", ".ndjson"):
        return Source("jsonl", (str(local),))
    return Source("text", (str(local),))


def _parquet_source(files: tuple[str, ...], text_column: str, id_column: str | None) -> Source:
    """Check every file has the columns asked for (and ids, when one file has them, in all)."""
    import pyarrow.parquet as pq

    names = []
    for file in files:
        try:
            names.append(set(pq.read_schema(file).names))
        except (OSError, ValueError) as exc:
            raise DataError(f"not a readable Parquet file ({str(exc).splitlines()[0]})", path=file) from None
    for file, columns in zip(files, names):
        if text_column not in columns:
            raise DataError(f"no column {text_column!r} (columns: {', '.join(sorted(columns))}); "
                            "pass --text-column", path=file, field=text_column)
    if id_column is None:
        id_column = "id" if "id" in names[0] else ("_id" if "_id" in names[0] else None)
    for file, columns in zip(files, names):
        if id_column is not None and id_column not in columns:
            raise DataError(f"no column {id_column!r} (columns: {', '.join(sorted(columns))})", path=file,
                            field=id_column)
    return Source("parquet", files, text_column, id_column)


def plan_input(source: Source, rows_per_part: int | None = None) -> InputPlan:
    """Checksum the input, count its rows and cut it into parts of ``rows_per_part`` (default: see
    :func:`default_rows_per_part`)."""
    if rows_per_part is not None and (rows_per_part < 1 or rows_per_part % GRAIN and rows_per_part > GRAIN):
        raise ConfigError(f"rows per part must be 1..{GRAIN} or a multiple of {GRAIN}, got {rows_per_part}")
    if source.format == "parquet":
        return _plan_parquet(source, rows_per_part)
    return _plan_lines(source, rows_per_part)


def _plan_lines(source: Source, rows_per_part: int | None) -> InputPlan:
    """One pass over the file: sha256, and the byte offset and line number at each row multiple of the
    grain (or of ``rows_per_part`` when it is smaller than a grain)."""
    path = Path(source.files[0])
    jsonl = source.format == "jsonl"
    step = rows_per_part if rows_per_part is not None and rows_per_part < GRAIN else GRAIN
    h = hashlib.sha256()
    # byte offset and 1-based line number of row 0, step, 2*step, ...: 16 bytes a mark, not a tuple's ~100
    offsets, lines = array("q"), array("q")
    rows = offset = line = 0
    try:
        f = path.open("rb")
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", path=path) from None
    with f:
        for raw in f:
            line += 1
            h.update(raw)
            if not jsonl or raw.strip(_BLANK):
                if rows % step == 0:
                    offsets.append(offset)
                    lines.append(line)
                rows += 1
            offset += len(raw)
    if rows == 0:
        raise DataError("no documents (empty corpus)" if jsonl else "empty file (no lines)", path=path)
    per_part = rows_per_part or default_rows_per_part(rows)
    stride = per_part // step
    parts = []
    for index, first in enumerate(range(0, len(offsets), stride)):
        start = first * step
        stop = min(rows, start + per_part)
        end = offsets[first + stride] if first + stride < len(offsets) else offset
        parts.append(Part(index, start, stop, {"offset": offsets[first], "end": end, "line": lines[first]}))
    return InputPlan(source, rows, h.hexdigest(), per_part, parts)


def _plan_parquet(source: Source, rows_per_part: int | None) -> InputPlan:
    import pyarrow.parquet as pq

    h = hashlib.sha256()
    counts = []
    for file in source.files:
        with open(file, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
        counts.append(pq.ParquetFile(file).metadata.num_rows)
        h.update(f"\0{Path(file).name}\0".encode())
    rows = sum(counts)
    if rows == 0:
        raise DataError("no rows in the Parquet input", path=source.files[0])
    per_part = rows_per_part or default_rows_per_part(rows)
    bounds = [0]
    for count in counts:
        bounds.append(bounds[-1] + count)
    parts = []
    for index, start in enumerate(range(0, rows, per_part)):
        stop = min(rows, start + per_part)
        pieces = [[i, max(start, lo) - lo, min(stop, hi) - lo]
                  for i, (lo, hi) in enumerate(zip(bounds, bounds[1:])) if lo < stop and hi > start]
        parts.append(Part(index, start, stop, {"pieces": pieces}))
    return InputPlan(source, rows, h.hexdigest(), per_part, parts)


def read_part(source: Source, part: Part) -> tuple[list[str], list[str]]:
    """``(ids, texts)`` of one part, in input order."""
    if source.format == "parquet":
        return _read_parquet_part(source, part)
    path = Path(source.files[0])
    ids: list[str] = []
    texts: list[str] = []
    line = part.where["line"] - 1
    with path.open("rb") as f:
        f.seek(part.where["offset"])
        while len(ids) < part.rows:
            raw = f.readline()
            if not raw:
                raise DataError(f"file ended at line {line}, before row {part.stop} it had when the run was "
                                "planned; was it changed during the run?", path=path)
            line += 1
            if source.format == "text":
                ids.append(str(part.start + len(ids)))
                texts.append(_decode(raw, path, line, strip_bom=line == 1))
            elif raw.strip(_BLANK):
                doc_id, text = _document(raw, path, line)
                ids.append(doc_id)
                texts.append(text)
    return ids, texts


def _decode(raw: bytes, path: Path, line: int, strip_bom: bool = False) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); re-encode the file as UTF-8", path=path,
                        line=line) from None
    if strip_bom and text.startswith("\ufeff"):
        text = text[1:]
    if text.endswith("\n"):
        text = text[:-1]
    return text[:-1] if text.endswith("\r") else text


def _document(raw: bytes, path: Path, line: int) -> tuple[str, str]:
    from embedkit.data.beir import parse_document
    from embedkit.data.textio import parse_json_object
    from embedkit.data.records import full_text

    doc = parse_document(parse_json_object(_decode(raw, path, line, strip_bom=line == 1), path, line), path, line)
    return doc.id, full_text(doc.title, doc.text)


def _read_parquet_part(source: Source, part: Part) -> tuple[list[str], list[str]]:
    import pyarrow.parquet as pq

    ids: list[str] = []
    texts: list[str] = []
    columns = [source.text_column] + ([source.id_column] if source.id_column else [])
    for file_index, lo, hi in part.where["pieces"]:
        file = source.files[file_index]
        pf = pq.ParquetFile(file)
        groups, first, seen = [], None, 0
        for g in range(pf.metadata.num_row_groups):  # only the row groups that hold rows lo..hi
            n = pf.metadata.row_group(g).num_rows
            if seen + n > lo and seen < hi:
                groups.append(g)
                first = seen if first is None else first
            seen += n
        table = pf.read_row_groups(groups, columns=columns).slice(lo - first, hi - lo)
        for row, value in enumerate(table.column(source.text_column).to_pylist(), start=lo + 1):
            if not isinstance(value, str):
                raise DataError(f"row {row}: expected a string, got {type(value).__name__}", path=file,
                                field=source.text_column)
            texts.append(value)
        if source.id_column:
            for row, value in enumerate(table.column(source.id_column).to_pylist(), start=lo + 1):
                if value is None or isinstance(value, (bool, float, dict, list)) or str(value) == "":
                    raise DataError(f"row {row}: expected a non-empty string or integer id, got {value!r}",
                                    path=file, field=source.id_column)
                ids.append(str(value))
    if not source.id_column:
        ids = [str(i) for i in range(part.start, part.stop)]
    return ids, texts


def part_from_dict(obj: dict) -> Part:
    return Part(obj["index"], obj["start"], obj["stop"], obj["where"])


def part_to_json(part: Part) -> str:
    return json.dumps({"index": part.index, "start": part.start, "stop": part.stop, "where": part.where})
