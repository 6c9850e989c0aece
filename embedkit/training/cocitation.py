"""Training pairs from co-citation: two papers cited together by the same paper are positives.

Kapur, Hallee et al. 2024 (arXiv:2401.15713) gather domain-specific pairs this way from PubMed
Central: papers that a third paper cites side by side are usually about closely related things.

Input: a JSONL file, one paper a line, with ``id``, a ``title`` and/or ``abstract`` (or ``text``), and
``references``: the ids of the papers it cites. References to papers not in the file are ignored (no
text to train on). Output: (text of paper A, text of paper B) pairs, one per unordered pair of papers
co-cited at least ``min_count`` times, most co-cited first, ties in first-seen order.
"""
from __future__ import annotations

import itertools
import os
from collections import Counter
from dataclasses import dataclass

from embedkit.data.textio import iter_lines, parse_json_object
from embedkit.errors import DataError
from embedkit.paths import resolve_data_path


@dataclass(frozen=True)
class Paper:
    id: str
    text: str
    references: tuple[str, ...]


def read_papers(path: str | os.PathLike) -> dict[str, Paper]:
    """Papers by id, in file order; bad lines raise ``DataError`` naming the file, line and field."""
    file = resolve_data_path(path)
    papers: dict[str, Paper] = {}
    for line, text in iter_lines(file):
        if not text.strip():
            continue
        obj = parse_json_object(text, file, line)
        paper_id = obj.get("id")
        if not isinstance(paper_id, (str, int)) or isinstance(paper_id, bool) or str(paper_id) == "":
            raise DataError("missing or empty paper id", path=file, line=line, field="id")
        paper_id = str(paper_id)
        if paper_id in papers:
            raise DataError(f"duplicate paper id {paper_id!r}", path=file, line=line, field="id")
        parts = []
        for key in ("title", "abstract", "text"):
            value = obj.get(key)
            if value is not None and not isinstance(value, str):
                raise DataError(f"expected a string, got {type(value).__name__}", path=file, line=line, field=key)
            if value and value.strip():
                parts.append(value.strip())
        references = obj.get("references", [])
        if not isinstance(references, list) or not all(isinstance(r, (str, int)) and not isinstance(r, bool)
                                                       for r in references):
            raise DataError("expected a list of paper ids", path=file, line=line, field="references")
        papers[paper_id] = Paper(paper_id, " ".join(parts), tuple(dict.fromkeys(str(r) for r in references)))
    if not papers:
        raise DataError("no papers", path=file)
    return papers


def cocitation_counts(papers: dict[str, Paper]) -> Counter:
    """``{(id_a, id_b): number of papers citing both}`` over papers with text, ids in first-seen order."""
    order = {paper_id: i for i, paper_id in enumerate(papers)}
    counts: Counter = Counter()
    for paper in papers.values():
        cited = [r for r in paper.references if r in papers and r != paper.id and papers[r].text]
        for a, b in itertools.combinations(sorted(cited, key=order.__getitem__), 2):
            counts[(a, b)] += 1
    return counts


def cocitation_pairs(path: str | os.PathLike, min_count: int = 1, limit: int | None = None) -> list[tuple[str, str]]:
    """(text A, text B) for every pair co-cited at least ``min_count`` times (see the module docstring)."""
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    papers = read_papers(path)
    counts = cocitation_counts(papers)
    ranked = sorted((pair for pair, n in counts.items() if n >= min_count), key=lambda p: -counts[p])
    return [(papers[a].text, papers[b].text) for a, b in ranked[:limit]]
