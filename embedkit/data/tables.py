"""Rows with named columns from CSV, TSV and JSONL files (the generic STS, pair and triplet formats).

- ``.csv``: a header row, then rows in standard CSV quoting (double quotes, as pandas and SimCSE's
  ``nli_for_simcse.csv`` write them).
- ``.tsv`` / ``.tab`` / ``.txt``: a header row, then rows split on tabs with NO quoting, so a ``"``
  inside a sentence is kept as is (the STS convention).
- ``.jsonl`` / ``.ndjson``: one JSON object per line.

Blank lines are skipped. Fields beyond the header are ignored; a row with fewer fields than the
header simply lacks the trailing columns, and the caller reports the one it needed.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from embedkit.data.textio import parse_json_object, read_text, split_lines
from embedkit.errors import DataError

TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass(frozen=True)
class Table:
    """``rows`` are ``(line, {column: value})`` with 1-based line numbers; ``columns`` (the header, on
    ``header_line``) is None for JSONL."""

    path: Path
    format: str
    columns: list[str] | None
    rows: list[tuple[int, dict]]
    header_line: int | None = None


def table_format(path: Path) -> str:
    fmt = TABLE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"unknown file type {path.suffix!r}; expected one of {', '.join(TABLE_SUFFIXES)}", path=path)
    return fmt


def _csv_rows(path: Path, text: str) -> list[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    rows, start = [], 1
    try:
        for fields in reader:
            # a quoted field may span lines: report the line the record starts on
            if fields and any(f.strip() for f in fields):
                rows.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"malformed CSV: {exc}", path=path, line=reader.line_num or start) from None
    return rows


def _tsv_rows(text: str) -> list[tuple[int, list[str]]]:
    return [(n, line.split("\t")) for n, line in enumerate(split_lines(text), start=1) if line.strip()]


def read_table(path: Path) -> Table:
    """Parse ``path`` by its suffix (a CSV/TSV without even a header row is an error)."""
    fmt = table_format(path)
    text = read_text(path)
    if fmt == "jsonl":
        rows = [(n, parse_json_object(line, path, n)) for n, line in enumerate(split_lines(text), start=1)
                if line.strip()]
        columns, header_line = None, None
    else:
        raw = _csv_rows(path, text) if fmt == "csv" else _tsv_rows(text)
        if not raw:
            raise DataError("empty file (no header, no rows)", path=path)
        header_line, columns = raw[0][0], [c.strip() for c in raw[0][1]]
        rows = [(n, dict(zip(columns, fields))) for n, fields in raw[1:]]
    return Table(path, fmt, columns, rows, header_line)


def find_schema(table: Table, schemas: Sequence[tuple[Sequence[str], Sequence[str]]]) -> tuple[Sequence[str], Sequence[str]]:
    """The first ``(required, optional)`` column set whose required columns the header has (for JSONL:
    the first object's keys), with the optional columns the header has (for JSONL: all of them, as
    keys vary by line). Raises if none fits, or if there are no data rows (an empty dataset)."""
    if table.columns is None and not table.rows:
        raise DataError("no data rows (empty dataset)", path=table.path)
    present = table.columns if table.columns is not None else list(table.rows[0][1])
    for required, optional in schemas:
        if all(c in present for c in required):
            if not table.rows:
                raise DataError("no data rows (empty dataset)", path=table.path)
            return required, [c for c in optional if table.columns is None or c in present]
    accepted = " | ".join(",".join(list(req) + [f"[{o}]" for o in opt]) for req, opt in schemas)
    where = "header" if table.columns is not None else "first object's keys"
    raise DataError(f"{where} {present} lacks the needed columns; expected one of: {accepted}", path=table.path,
                    line=table.header_line if table.columns is not None else table.rows[0][0])


def text_cell(table: Table, line: int, row: dict, column: str) -> str:
    """A text value; a row too short to reach it, or a non-string JSON value, names file, line and field."""
    if column not in row or row[column] is None:
        if table.columns is not None:
            raise DataError(f"too few fields: the line has {len(row)}, the header names {len(table.columns)}",
                            path=table.path, line=line, field=column)
        raise DataError("missing field", path=table.path, line=line, field=column)
    value = row[column]
    if not isinstance(value, str):
        raise DataError(f"expected a string, got {type(value).__name__}", path=table.path, line=line, field=column)
    return value
