"""Records: one JSON file behind every published figure, and the generated tables that quote them.

A record says what was measured and everything needed to judge and repeat it: the metrics, the command
(or resolved recipe), the git commit the code was at, the package versions, the CPU model and the
instruction-set flags that decide its speed, the device, and the wall time. Records live under
``results/<area>/<name>.json`` and are committed; documents never type a figure by hand but quote a table
generated from records between markers::

    <!-- table: NAME -->
    | generated rows |
    <!-- /table: NAME -->

``render_document`` rewrites the text between each pair of markers; with ``check`` it only reports the
tables that disagree with their records (a test runs that check over every document).
"""
from __future__ import annotations

import json
import platform
import re
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable, Iterator, Mapping

from embedkit.atomic import write_text_atomic
from embedkit.errors import DataError
from embedkit.machine import accelerator, cpu_info

RECORD_VERSION = 1
PACKAGES = ("embedkit", "torch", "sentence-transformers", "transformers", "faiss-cpu", "mteb", "numpy", "bm25s",
            "onnxruntime", "openvino", "optimum", "optimum-intel", "model2vec", "ray", "fastapi", "uvicorn")
_SOURCE = Path(__file__).resolve().parent.parent


def git_commit(repo: Path = _SOURCE) -> str:
    """The commit embedkit's source is at, with ``-dirty`` when tracked files differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                              timeout=10).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):  # not a git checkout (an installed wheel)
        return "unknown"


def package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def environment() -> dict:
    """Where a measurement ran: commit, packages, CPU (model, cores, flags), device, Python, date."""
    return {"commit": git_commit(), "packages": package_versions(), "cpu": cpu_info().as_dict(),
            "device": accelerator(), "python": platform.python_version(), "platform": platform.platform(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def make_record(name: str, metrics: Mapping, command: str | list[str], wall_seconds: float,
                recipe: Mapping | None = None, details: Mapping | None = None) -> dict:
    record = {"record_version": RECORD_VERSION, "name": name, "metrics": dict(metrics),
              "command": command if isinstance(command, str) else " ".join(command),
              "wall_seconds": round(float(wall_seconds), 3), **environment()}
    if recipe is not None:
        record["recipe"] = dict(recipe)
    if details:
        record["details"] = dict(details)
    return record


def write_record(path: str | Path, record: Mapping) -> Path:
    path = Path(path)
    write_text_atomic(path, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return path


@dataclass
class Recording:
    """What a ``recording`` block fills in; the wall time is taken when the block ends."""
    metrics: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    recipe: dict | None = None
    path: Path | None = None


@contextmanager
def recording(path: str | Path, name: str, command: str | list[str]) -> Iterator[Recording]:
    """Time a block and write its record when it ends without an error::

        with recording("results/index/lock.json", "index-lock", sys.argv) as rec:
            rec.metrics["add_ms"] = ...
    """
    rec = Recording(path=Path(path))
    start = time.perf_counter()
    yield rec
    write_record(rec.path, make_record(name, rec.metrics, command, time.perf_counter() - start, rec.recipe,
                                       rec.details))


def load_record(path: str | Path) -> dict:
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"not a readable record ({exc})", path=path) from None
    if not isinstance(record, dict) or "metrics" not in record:
        raise DataError("not an embedkit record (no 'metrics')", path=path)
    return record


def load_records(folder: str | Path, pattern: str = "*.json") -> list[dict]:
    """Every record under ``folder`` matching ``pattern``, sorted by file name (each with its ``path``)."""
    return [{**load_record(p), "path": str(p)} for p in sorted(Path(folder).glob(pattern))]


_MARKER = re.compile(r"(<!-- table: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /table: (?P=name) -->)", re.S)


def render_document(path: str | Path, tables: Mapping[str, Callable[[], str]], check: bool = False,
                    errors: list[DataError] | None = None) -> list[str]:
    """Replace each marked table in ``path`` by ``tables[name]()``; returns the names that differed.

    With ``check`` nothing is written. A marker naming no known table is an error (a typo would otherwise
    leave a hand-typed table unchecked). A table whose records cannot be read raises, naming the table, or,
    given an ``errors`` list, is appended to it and left as it is while the other tables are rendered.
    """
    text = Path(path).read_text(encoding="utf-8")
    stale: list[str] = []

    def replace(m: re.Match) -> str:
        name = m["name"]
        if name not in tables:
            raise DataError(f"marker names an unknown table {name!r}", path=path)
        try:
            body = tables[name]().rstrip("\n") + "\n"
        except DataError as exc:  # a record the table needs is missing or unreadable: name the table too
            error = DataError(f"table {name!r}: {exc}", path=path)
            if errors is None:
                raise error from None
            errors.append(error)
            return m.group(0)
        if body != m["body"]:
            stale.append(name)
        return m.group(1) + body + m.group(4)

    new = _MARKER.sub(replace, text)
    if stale and not check:
        write_text_atomic(path, new)
    return stale


def fmt(value: float | None, digits: int = 2) -> str:
    """A figure as the tables print it (one rounding everywhere), or an en dash when missing."""
    return "–" if value is None else f"{value:,.{digits}f}"


def fmt_seeds(values, digits: int = 2) -> str:
    """Runs over seeds as the tables print them: ``mean (min-max)``, the spread being max - min, or
    ``mean (min to max)`` where the minimum is negative (``-1.15--0.59`` misreads); one value alone; an en
    dash for none (``None`` values are skipped)."""
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return fmt(values[0], digits) if values else "–"
    low, high = min(values), max(values)
    return f"{fmt(sum(values) / len(values), digits)} ({fmt(low, digits)}{' to ' if low < 0 else '-'}{fmt(high, digits)})"
