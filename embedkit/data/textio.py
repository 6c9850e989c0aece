"""Reading data files as UTF-8 lines, with errors that name the file and the 1-based line.

Lines are split on ``\\n`` only, then one trailing ``\\r`` is dropped, so CRLF files read like LF
files. ``str.splitlines`` is not used on purpose: it also splits on U+2028, U+0085, form feeds and
other characters that occur inside real sentences (Wikipedia, web text).
A missing final newline is fine; a UTF-8 byte-order mark at the start is dropped.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterator

from embedkit.errors import DataError

_BOM = "\ufeff"


def _decode_error(path: Path, data: bytes, exc: UnicodeDecodeError, first_line: int = 1) -> DataError:
    line = first_line + data.count(b"\n", 0, exc.start)
    return DataError(f"not valid UTF-8 (byte 0x{data[exc.start]:02x}); re-encode the file as UTF-8", path=path,
                     line=line)


def read_bytes(path: Path) -> bytes:
    if path.is_dir():
        raise DataError("is a folder, expected a file", path=path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError("no such file", path=path) from None
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", path=path) from None


def read_text(path: Path) -> str:
    """The whole file decoded as UTF-8 (BOM dropped); non-UTF-8 bytes raise with their line."""
    data = read_bytes(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _decode_error(path, data, exc) from None
    return text[1:] if text.startswith(_BOM) else text


def split_lines(text: str) -> list[str]:
    """Lines of ``text`` without their ``\\n`` / ``\\r\\n``; no phantom empty line after a final newline."""
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Stream ``(line_number, line)`` pairs (1-based) without loading the file; same rules as ``split_lines``."""
    if path.is_dir():
        raise DataError("is a folder, expected a file", path=path)
    try:
        f = path.open("rb")
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", path=path) from None
    with f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _decode_error(path, raw, exc, first_line=number) from None
            if number == 1 and line.startswith(_BOM):
                line = line[1:]
            if line.endswith("\n"):
                line = line[:-1]
            if line.endswith("\r"):
                line = line[:-1]
            yield number, line


def parse_score(value: object, path: Path | str, line: int, field: str) -> float:
    """A finite float from a table cell or JSON value; anything else names the file, line and field."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DataError(f"score must be a number, got {value!r}", path=path, line=line, field=field)
    try:
        score = float(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise DataError(f"score is not a number: {value!r}", path=path, line=line, field=field) from None
    if not math.isfinite(score):
        raise DataError(f"score is not a finite number: {value!r}", path=path, line=line, field=field)
    return score


def parse_json_object(text: str, path: Path | str, line: int) -> dict:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg} (column {exc.colno})", path=path, line=line) from None
    except RecursionError:
        raise DataError("invalid JSON: nested too deeply", path=path, line=line) from None
    if not isinstance(obj, dict):
        raise DataError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=line)
    return obj


def text_field(obj: dict, key: str, path: Path | str, line: int, required: bool = True) -> str | None:
    """``obj[key]`` as a string: a missing or null value is an error when required, else None."""
    value = obj.get(key)
    if value is None:
        if required:
            raise DataError("missing field", path=path, line=line, field=key)
        return None
    if not isinstance(value, str):
        raise DataError(f"expected a string, got {type(value).__name__}", path=path, line=line, field=key)
    return value
