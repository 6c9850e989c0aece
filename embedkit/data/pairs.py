"""Training text: plain sentence files, and (anchor, positive[, negative]) tuples from CSV, TSV or JSONL.

Accepted column sets, first match wins (extra columns are ignored):
- ``sent0,sent1[,hard_neg]``: SimCSE's ``nli_for_simcse.csv`` (and the shared ``nli/`` triplets),
- ``anchor,positive[,negative]``: sentence-transformers' naming,
- ``sentence1,sentence2``: plain pairs (also an STS file, whose score is then ignored).
``.csv`` uses standard CSV quoting, ``.tsv``/``.txt`` split on tabs without quoting, ``.jsonl`` has
one object a line with those keys (see :mod:`embedkit.data.tables`).
"""
from __future__ import annotations

import os

from embedkit.data.records import Triplet
from embedkit.data.tables import find_schema, read_table, text_cell
from embedkit.data.textio import read_text, split_lines
from embedkit.errors import DataError
from embedkit.paths import resolve_data_path

TUPLE_SCHEMAS = [
    (("sent0", "sent1"), ("hard_neg",)),
    (("anchor", "positive"), ("negative",)),
    (("sentence1", "sentence2"), ()),
]


def read_lines(path: str | os.PathLike) -> list[str]:
    """Every line of a UTF-8 text file, in order, blank ones kept as "" (one output row per input
    line, as ``embedkit encode`` needs). Only the ``\\n`` / ``\\r\\n`` ending is removed; a final
    newline does not add an empty line. An empty file is a DataError."""
    file = resolve_data_path(path)
    lines = split_lines(read_text(file))
    if not lines:
        raise DataError("empty file (no lines)", path=file)
    return lines


def load_sentences(path: str | os.PathLike) -> list[str]:
    """The non-blank lines of a text file (one sentence a line, e.g. SimCSE's wiki1m), text kept as is
    apart from the line ending. Blank (whitespace-only) lines are skipped; none left is a DataError."""
    file = resolve_data_path(path)
    sentences = [line for line in split_lines(read_text(file)) if line.strip()]
    if not sentences:
        raise DataError("no sentences (empty or blank file)", path=file)
    return sentences


def load_triplets(path: str | os.PathLike) -> list[Triplet]:
    """Tuples from a CSV/TSV/JSONL file in one of the column sets above.

    ``negative`` is None when the file has no negative column, or the row's value is empty or
    JSON null. A row too short for a column in the header is a DataError naming file, line and field.
    """
    table = read_table(resolve_data_path(path))
    (anchor_col, positive_col), optional = find_schema(table, TUPLE_SCHEMAS)
    triplets = []
    for line, row in table.rows:
        anchor, positive = text_cell(table, line, row, anchor_col), text_cell(table, line, row, positive_col)
        negative = None
        # in JSONL a missing or null negative means none; in CSV/TSV a short row is an error
        if optional and (table.columns is not None or row.get(optional[0]) is not None):
            negative = text_cell(table, line, row, optional[0]) or None
        triplets.append(Triplet(anchor, positive, negative))
    return triplets


def load_pairs(path: str | os.PathLike) -> list[tuple[str, str]]:
    """``(anchor, positive)`` pairs from the same files as :func:`load_triplets`; a negative is dropped."""
    return [(t.anchor, t.positive) for t in load_triplets(path)]
