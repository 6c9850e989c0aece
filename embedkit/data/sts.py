"""Scored sentence pairs (STS): the format is detected from the path.

A file:
- ``sts-*.csv``: an original STS Benchmark file. Tab-separated, no header and NO quoting (lines hold
  unescaped ``"``); 7 or 9 fields, of which the first 7 are used: genre filename year id score s1 s2.
- A tab-separated file whose header has ``sentence_A``, ``sentence_B``, ``relatedness_score``: SICK
  (``SICK.txt``, ``SICK_test_annotated.txt``, ``SICK_train.txt``, ...). If it has a ``SemEval_set``
  column (``SICK.txt``), ``split`` selects rows: train, trial (or dev / validation), test (the
  default), any case, or ``all``.
- Any other ``.csv`` (standard quoting), ``.tsv``/``.txt`` (tabs, no quoting) or ``.jsonl`` with
  ``sentence1``, ``sentence2`` and ``score`` (or ``similarity_score``) columns and an optional ``genre``.
For any file other than ``SICK.txt``, ``split`` is ignored: the file is the split.

A folder:
- with ``STS.input.<name>.txt`` + ``STS.gs.<name>.txt`` files: a SentEval STS12-16 year folder. Each
  input line is s1<TAB>s2 (extra trailing fields ignored), each gold line a score; pairs whose gold
  line is empty are skipped, as SentEval does. ``subsets`` holds each ``<name>``, ``pairs`` all of them.
- with ``sts-*.csv`` files: STS-B, ``split`` picks ``sts-<split>.csv`` (``validation`` = dev).
- with ``SICK.txt``, or SemEval 2014's ``SICK_train.txt`` / ``SICK_trial.txt`` / ``SICK_test_annotated.txt``.
- with ``<split>.csv`` / ``<split>.tsv`` / ``<split>.jsonl`` in the generic format.
``split`` defaults to ``test``.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from embedkit.data.hub import STS_SCORE_COLUMNS, load_hub_sts, local_path_or_hub_id
from embedkit.data.records import STSDataset, STSPair
from embedkit.data.tables import Table, find_schema, read_table, text_cell
from embedkit.data.textio import parse_score, read_text, split_lines
from embedkit.errors import DataError

DEFAULT_SPLIT = "test"
STSB_COLUMNS = ("genre", "filename", "year", "id", "score", "sentence1", "sentence2")
STSB_SPLITS = {"train": "train", "dev": "dev", "validation": "dev", "test": "test"}
SICK_COLUMNS = ("sentence_A", "sentence_B", "relatedness_score")
SICK_SET_COLUMN = "SemEval_set"
SICK_SPLITS = {"train": "TRAIN", "trial": "TRIAL", "dev": "TRIAL", "validation": "TRIAL", "test": "TEST"}
SICK_SPLIT_FILES = {"TRAIN": "SICK_train.txt", "TRIAL": "SICK_trial.txt", "TEST": "SICK_test_annotated.txt"}
GENERIC_SCHEMAS = [(("sentence1", "sentence2", score), ("genre",)) for score in STS_SCORE_COLUMNS]
SENTEVAL_INPUT, SENTEVAL_GOLD = "STS.input.{}.txt", "STS.gs.{}.txt"
_STSB_NAME = re.compile(r"sts-.+\.csv", re.IGNORECASE)


def load_sts(path: str | os.PathLike, split: str | None = None) -> STSDataset:
    """Load scored pairs from a file or folder in any format above (relative paths also resolve
    against ``EMBEDKIT_DATA``). A string that exists nowhere locally and looks like a hub id
    (``owner/name``) is loaded with :func:`embedkit.data.hub.load_hub_sts`."""
    local = local_path_or_hub_id(path)
    if isinstance(local, str):
        return load_hub_sts(local, split or DEFAULT_SPLIT)
    if local.is_dir():
        return _load_folder(local, split)
    return _load_file(local, split)


def _load_file(path: Path, split: str | None) -> STSDataset:
    if _STSB_NAME.fullmatch(path.name):
        return load_stsb_file(path)
    table = read_table(path)
    if table.columns is not None and all(c in table.columns for c in SICK_COLUMNS):
        return _load_sick(table, split)
    return _load_generic(table)


def _load_folder(folder: Path, split: str | None) -> STSDataset:
    if any(folder.glob(SENTEVAL_INPUT.format("*"))):
        return load_senteval_folder(folder)
    key = (split or DEFAULT_SPLIT).lower()
    stsb_files = sorted(p.name for p in folder.glob("sts-*.csv"))
    if stsb_files:
        file = folder / f"sts-{STSB_SPLITS.get(key, key)}.csv"
        if not file.is_file():
            raise DataError(f"no {file.name} for split {split!r} (this folder has {', '.join(stsb_files)})",
                            path=folder)
        return load_stsb_file(file)
    if (folder / "SICK.txt").is_file():
        return _load_sick(read_table(folder / "SICK.txt"), split)
    if any((folder / name).is_file() for name in SICK_SPLIT_FILES.values()):
        file = folder / SICK_SPLIT_FILES.get(SICK_SPLITS.get(key, ""), f"SICK_{key}.txt")
        if not file.is_file():
            raise DataError(f"no {file.name} for split {split!r}", path=folder)
        return _load_sick(read_table(file), None)
    for suffix in (".csv", ".tsv", ".jsonl"):
        if (folder / f"{key}{suffix}").is_file():
            return _load_generic(read_table(folder / f"{key}{suffix}"))
    raise DataError("no STS data here: expected STS.input.*.txt + STS.gs.*.txt (SentEval), sts-<split>.csv "
                    f"(STS-B), SICK.txt, or {key}.csv / {key}.tsv / {key}.jsonl", path=folder)


def load_stsb_file(path: Path) -> STSDataset:
    """An original STS-B file; ``genre`` keeps the raw value (train says ``main-forum``, dev/test ``main-forums``)."""
    pairs = []
    for number, line in enumerate(split_lines(read_text(path)), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < len(STSB_COLUMNS):
            raise DataError(f"too few fields: expected {len(STSB_COLUMNS)} tab-separated fields "
                            f"({' '.join(STSB_COLUMNS)}), found {len(fields)}", path=path, line=number,
                            field=STSB_COLUMNS[len(fields)])
        score = parse_score(fields[4], path, number, "score")
        pairs.append(STSPair(fields[5], fields[6], score, genre=fields[0]))
    if not pairs:
        raise DataError("no pairs (empty dataset)", path=path)
    name = "stsb-" + path.stem[len("sts-"):]
    return STSDataset(name=name, pairs=pairs, source=str(path))


def _load_sick(table: Table, split: str | None) -> STSDataset:
    wanted = None
    key = (split or DEFAULT_SPLIT).lower()
    if SICK_SET_COLUMN in table.columns and key != "all":
        wanted = SICK_SPLITS.get(key)
        if wanted is None:
            raise DataError(f"unknown SICK split {split!r}; use train, trial (or dev), test or all", path=table.path,
                            field="split")
    pairs = []
    for line, row in table.rows:
        if wanted is not None and text_cell(table, line, row, SICK_SET_COLUMN).strip().upper() != wanted:
            continue
        s1, s2, score_text = (text_cell(table, line, row, c) for c in SICK_COLUMNS)
        pairs.append(STSPair(s1, s2, parse_score(score_text, table.path, line, "relatedness_score")))
    if not pairs:
        which = f"rows with {SICK_SET_COLUMN} {wanted}" if wanted else "data rows"
        raise DataError(f"no {which} (empty dataset)", path=table.path)
    name = table.path.stem + (f"-{key}" if SICK_SET_COLUMN in table.columns else "")
    return STSDataset(name=name, pairs=pairs, source=str(table.path))


def _load_generic(table: Table) -> STSDataset:
    (c1, c2, score_column), optional = find_schema(table, GENERIC_SCHEMAS)
    pairs = []
    for line, row in table.rows:
        s1, s2 = text_cell(table, line, row, c1), text_cell(table, line, row, c2)
        raw_score = row.get(score_column)
        if raw_score is None:
            text_cell(table, line, row, score_column)  # raises: too few fields / missing field
        genre = row.get("genre") if optional else None
        pairs.append(STSPair(s1, s2, parse_score(raw_score, table.path, line, score_column),
                             genre=genre if isinstance(genre, str) else None))
    return STSDataset(name=table.path.stem, pairs=pairs, source=str(table.path))


def _senteval_subset(input_file: Path, gold_file: Path, name: str) -> list[STSPair]:
    if not gold_file.is_file():
        raise DataError(f"no gold-score file {gold_file.name} beside it", path=input_file)
    inputs, golds = split_lines(read_text(input_file)), split_lines(read_text(gold_file))
    if len(inputs) != len(golds):
        raise DataError(f"{len(inputs)} lines, but {gold_file.name} has {len(golds)}; they pair line by line",
                        path=input_file)
    pairs = []
    for number, (text, gold) in enumerate(zip(inputs, golds), start=1):
        if not gold.strip():  # unscored pair: SentEval skips it
            continue
        score = parse_score(gold, gold_file, number, "score")
        fields = text.split("\t")
        if len(fields) < 2:
            raise DataError("too few fields: expected sentence1<TAB>sentence2", path=input_file, line=number,
                            field="sentence2")
        pairs.append(STSPair(fields[0], fields[1], score, genre=name))
    if not pairs:
        raise DataError("every gold line is empty (no scored pairs)", path=gold_file)
    return pairs


def load_senteval_folder(folder: Path) -> STSDataset:
    """A SentEval STS12-16 year folder; subsets in file-name order, ``pairs`` pooled over all of them."""
    subsets = {}
    prefix, suffix = SENTEVAL_INPUT.split("{}")
    for input_file in sorted(folder.glob(SENTEVAL_INPUT.format("*"))):
        name = input_file.name[len(prefix):-len(suffix)]
        subsets[name] = _senteval_subset(input_file, folder / SENTEVAL_GOLD.format(name), name)
    if not subsets:
        raise DataError(f"no {SENTEVAL_INPUT.format('<name>')} files", path=folder)
    pairs = [pair for subset in subsets.values() for pair in subset]
    return STSDataset(name=folder.name, pairs=pairs, source=str(folder), subsets=subsets)
