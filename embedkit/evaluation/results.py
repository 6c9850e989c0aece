"""Evaluation results on disk, in mteb's result format, each traceable to what produced it.

Layout (mteb's ``ResultCache`` layout, so ``mteb.ResultCache(DIR)`` and mteb's loaders read it)::

    DIR/results/<model name>/<revision>/model_meta.json       # revision = the model's weight fingerprint
    DIR/results/<model name>/<revision>/<task name>.json      # an mteb TaskResult + an "embedkit" record
    DIR/results/<model name>/<revision>/per_item/<task name>.json   # per-query / per-pair scores

The ``"embedkit"`` key of a result holds its provenance: model fingerprint, data path and checksum,
dataset revision, embedkit / mteb / sentence-transformers / torch versions, the command line, the date.
mteb ignores the key when it loads the file. Every file is written atomically (temp file + rename),
and the result file is written last, so a result that exists is a finished task: an interrupted run
leaves no half-written result behind.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from embedkit.atomic import write_json_atomic
from embedkit.errors import ConfigError

RESULTS_SUBDIR = "results"
PER_ITEM_DIR = "per_item"
PROVENANCE_KEY = "embedkit"
MODEL_META_FILE = "model_meta.json"


def task_result_path(out: str | os.PathLike, model_meta, task_name: str) -> Path:
    """Where mteb's ResultCache keeps ``task_name`` for this model name and revision, under ``out``."""
    from embedkit.evaluation._mteb import import_mteb

    return Path(import_mteb().ResultCache(cache_path=out).get_task_result_path(task_name, model_meta))


def per_item_path(result_path: Path) -> Path:
    return result_path.parent / PER_ITEM_DIR / result_path.name


def write_task_result(out: str | os.PathLike, model_meta, task_result, provenance: dict,
                      per_item: dict | None = None) -> Path:
    """Store one finished task: model_meta.json, the per-item scores, then the result with its provenance."""
    path = task_result_path(out, model_meta, task_result.task_name)
    write_json_atomic(path.parent / MODEL_META_FILE, model_meta.to_dict())
    if per_item is not None:
        write_json_atomic(per_item_path(path), per_item, indent=None)  # thousands of numbers: one line
    else:
        per_item_path(path).unlink(missing_ok=True)  # a stale file from an earlier run must not pair with this one
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        task_result.to_disk(Path(tmp))  # mteb's own serialisation (rounding, date as a timestamp)
        data = json.loads(Path(tmp).read_text(encoding="utf-8"))
    finally:
        Path(tmp).unlink(missing_ok=True)
    data[PROVENANCE_KEY] = provenance
    write_json_atomic(path, data)
    return path


@dataclass(frozen=True)
class StoredResult:
    """One task result of one model revision, as read back from a results folder."""

    path: Path
    model_name: str
    revision: str
    task_name: str
    label: str  # the report's row name
    task_type: str | None
    metric: str | None  # the main score's name (None for foreign results whose task mteb does not know)
    score: float  # mteb's main score (0-1 scale for STS and retrieval)
    dataset_revision: str
    date: float | None
    provenance: dict

    @property
    def per_item_path(self) -> Path:
        return per_item_path(self.path)

    def per_item(self) -> dict | None:
        try:
            return json.loads(self.per_item_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None


def load_finished(path: Path, dataset_revision: str, fingerprint: str) -> StoredResult | None:
    """The stored result at ``path`` if it is complete and was made from this data and these weights."""
    stored = _read(path)
    if stored is None or stored.dataset_revision != dataset_revision:
        return None
    if stored.provenance.get("model_fingerprint") != fingerprint:
        return None
    return stored


def read_results(results_dir: str | os.PathLike) -> list[StoredResult]:
    """Every readable task result under ``results_dir`` (a folder holding ``results/``, or that folder)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such results folder")
    base = root / RESULTS_SUBDIR if (root / RESULTS_SUBDIR).is_dir() else root
    found = []
    for path in sorted(base.glob("*/*/*.json")):  # model/revision/task.json, as mteb's ResultCache globs
        if path.name == MODEL_META_FILE:
            continue
        stored = _read(path)
        if stored is not None:
            found.append(stored)
    return found


def _read(path: Path) -> StoredResult | None:
    """None for a missing or unreadable file (a crash of a tool that writes non-atomically, or a foreign file)."""
    from embedkit.evaluation._mteb import import_mteb

    mteb = import_mteb()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        result = mteb.TaskResult.model_validate(data)
        score = float(result.get_score())
    except (OSError, ValueError, TypeError, KeyError):
        return None
    provenance = data.get(PROVENANCE_KEY) or {}
    model_name, revision = _model_identity(path)
    task_type, metric = provenance.get("task_type"), provenance.get("main_score")
    if task_type is None or metric is None:  # a result mteb wrote itself: ask its registry
        try:
            meta = mteb.get_task(result.task_name).metadata
            task_type, metric = task_type or meta.type, metric or meta.main_score
        except Exception:  # noqa: BLE001 - any task mteb cannot name leaves these unknown
            pass
    date = data.get("date")
    return StoredResult(path=path, model_name=model_name, revision=revision, task_name=result.task_name,
                        label=provenance.get("label") or result.task_name, task_type=task_type, metric=metric,
                        score=score, dataset_revision=result.dataset_revision,
                        date=float(date) if isinstance(date, (int, float)) else None, provenance=provenance)


def _model_identity(path: Path) -> tuple[str, str]:
    """The model's name and revision from model_meta.json, else from the folder names (``a__b`` -> ``a/b``)."""
    try:
        meta = json.loads((path.parent / MODEL_META_FILE).read_text(encoding="utf-8"))
        if meta.get("name") and meta.get("revision"):
            return str(meta["name"]), str(meta["revision"])
    except (OSError, ValueError):
        pass
    return path.parent.parent.name.replace("__", "/"), path.parent.name
