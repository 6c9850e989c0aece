"""Co-citation pairs from a small papers JSONL written here."""
from __future__ import annotations

import json

import pytest

from embedkit.errors import DataError
from embedkit.training.cocitation import cocitation_counts, cocitation_pairs, read_papers

PAPERS = [
    {"id": "A", "title": "Paper A", "abstract": "About proteins.", "references": []},
    {"id": "B", "title": "Paper B", "abstract": "About protein folding.", "references": []},
    {"id": "C", "title": "Paper C", "abstract": "About enzymes."},
    {"id": "D", "title": "Paper D", "abstract": "About galaxies.", "references": []},
    {"id": "R1", "title": "Review 1", "references": ["A", "B", "C", "X404"]},
    {"id": "R2", "title": "Review 2", "references": ["B", "A", "A"]},
    {"id": 7, "title": "Survey", "references": ["D", "R1"]},
]


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_counts_pairs_cited_together(tmp_path):
    papers = read_papers(write(tmp_path / "papers.jsonl", PAPERS))
    counts = cocitation_counts(papers)
    # R1 cites A, B, C (X404 is not in the file); R2 cites A and B again; the survey cites D and R1
    assert counts == {("A", "B"): 2, ("A", "C"): 1, ("B", "C"): 1, ("D", "R1"): 1}
    assert papers["7"].references == ("D", "R1")


def test_pairs_are_texts_most_cocited_first(tmp_path):
    path = write(tmp_path / "papers.jsonl", PAPERS)
    pairs = cocitation_pairs(path)
    assert pairs[0] == ("Paper A About proteins.", "Paper B About protein folding.")
    assert len(pairs) == 4
    assert cocitation_pairs(path, min_count=2) == [pairs[0]]
    assert cocitation_pairs(path, limit=2) == pairs[:2]


def test_bad_lines_name_file_line_and_field(tmp_path):
    with pytest.raises(DataError, match=r"papers.jsonl, line 2, field 'references'"):
        read_papers(write(tmp_path / "papers.jsonl", [PAPERS[0], {"id": "B", "references": "A"}]))
    with pytest.raises(DataError, match=r"line 2, field 'id': duplicate"):
        read_papers(write(tmp_path / "papers.jsonl", [PAPERS[0], PAPERS[0]]))
    with pytest.raises(DataError, match=r"line 1, field 'id'"):
        read_papers(write(tmp_path / "papers.jsonl", [{"title": "no id"}]))
