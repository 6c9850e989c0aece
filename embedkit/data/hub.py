"""Hugging Face hub datasets, for online users, through ``datasets.load_dataset``.

``load_sts`` / ``load_beir`` come here when their path exists nowhere locally (not as given, not
under ``EMBEDKIT_DATA``) and looks like a hub id: ``owner/name`` with exactly one slash and no
data-file suffix such as ``.csv``. Offline (``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE``), a dataset
already in the ``datasets`` cache still loads; any other failure is one DataError line that says
to pass a local path. STS rows are read here; BEIR's three configs are read by
:func:`embedkit.data.beir.load_hub_beir` with BEIR's own readers.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from embedkit.data.records import STSDataset, STSPair
from embedkit.data.textio import parse_score
from embedkit.errors import DataError
from embedkit.paths import data_dir, resolve_data_path

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_DATA_SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".jsonl", ".ndjson", ".json")
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
# Score column names used by hub STS datasets (mteb/*-sts and sentence-transformers/stsb use "score").
STS_SCORE_COLUMNS = ("score", "similarity_score")


def looks_like_hub_id(text: str) -> bool:
    return bool(_HUB_ID.match(text)) and not text.lower().endswith(_DATA_SUFFIXES)


def local_path_or_hub_id(path: str | os.PathLike) -> Path | str:
    """The resolved local path, else ``path`` itself when it is a string that looks like a hub id."""
    try:
        return resolve_data_path(path)
    except DataError:
        if isinstance(path, str) and looks_like_hub_id(path):
            return path
        raise


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in _OFFLINE_VARS)


def load_hub_rows(name: str, config: str | None, split: str):
    import datasets

    try:
        return datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # datasets and the hub client raise many types; all mean "could not get it"
        if _offline():
            reason = "offline (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set) and not in the datasets cache"
        else:
            detail = (str(exc).strip().splitlines() or [""])[0][:160]
            reason = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        what = f"{name!r}" + (f" config {config!r}" if config else "") + f" split {split!r}"
        raise DataError(f"cannot load hub dataset {what} ({reason}); pass a local file or folder instead "
                        f"(absolute, or relative to EMBEDKIT_DATA={data_dir()})") from None


def hub_column(row: dict, names: tuple[str, ...], where: str, line: int) -> object:
    for name in names:
        if name in row and row[name] is not None:
            return row[name]
    raise DataError(f"missing field (has {sorted(row)})", path=where, line=line, field=names[0])


def load_hub_sts(name: str, split: str = "test", config: str | None = None) -> STSDataset:
    """An STS dataset with columns ``sentence1``, ``sentence2``, ``score`` (or ``similarity_score``)
    and optionally ``genre`` (``mteb/stsbenchmark-sts``, ``sentence-transformers/stsb``, ``mteb/sickr-sts``).
    Errors name ``hub:<name>`` and the 1-based row as the line."""
    rows = load_hub_rows(name, config, split)
    where = f"hub:{name}"
    pairs = []
    for line, row in enumerate(rows, start=1):
        s1, s2 = hub_column(row, ("sentence1",), where, line), hub_column(row, ("sentence2",), where, line)
        score = parse_score(hub_column(row, STS_SCORE_COLUMNS, where, line), where, line, "score")
        pairs.append(STSPair(str(s1), str(s2), score, genre=row.get("genre")))
    if not pairs:
        raise DataError(f"split {split!r} has no rows (empty dataset)", path=where)
    return STSDataset(name=name.split("/")[-1] + f"-{split}", pairs=pairs, source=where)
