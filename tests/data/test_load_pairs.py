"""Sentence files, pairs and triplets (SimCSE CSV, anchor/positive/negative, JSONL) and their errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedkit.data import Triplet, load_pairs, load_sentences, load_triplets, read_lines
from embedkit.errors import DataError


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def error_of(fn, *args) -> str:
    with pytest.raises(DataError) as info:
        fn(*args)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_read_lines_keeps_every_line(tmp_path):
    path = write(tmp_path / "in.txt", "first\r\n\r\n  spaced  \r\nlast with \u2028 separator")
    assert read_lines(path) == ["first", "", "  spaced  ", "last with \u2028 separator"]
    assert read_lines(write(tmp_path / "a.txt", "a\n\n")) == ["a", ""]
    assert "empty" in error_of(read_lines, write(tmp_path / "e.txt", ""))


def test_load_sentences_skips_blank_lines(tmp_path):
    path = write(tmp_path / "wiki.txt", "\ufeffYMCA in South Australia\n\n   \nSouth Australia (SA) has a long history.")
    assert load_sentences(path) == ["YMCA in South Australia", "South Australia (SA) has a long history."]
    assert "no sentences" in error_of(load_sentences, write(tmp_path / "blank.txt", "\n \n"))
    path = tmp_path / "bad.txt"
    path.write_bytes(b"ok\nalso ok\nbad \xff byte\n")
    msg = error_of(load_sentences, path)
    assert str(path) in msg and "line 3" in msg and "UTF-8" in msg


def test_simcse_csv_triplets_with_quotes(tmp_path):
    # the layout of SimCSE's nli_for_simcse.csv: header sent0,sent1,hard_neg, standard double-quote quoting
    path = write(tmp_path / "nli.csv", 'sent0,sent1,hard_neg\r\n'
                 'Two women are embracing while holding to go packages .,Two woman are holding packages .,'
                 'The men are fighting outside a deli .\r\n'
                 '"Two young children in blue jerseys , one with the number 9 , are standing .",'
                 'Two kids in numbered jerseys wash their hands .,"He said ""no"" ."')
    assert load_triplets(path) == [
        Triplet("Two women are embracing while holding to go packages .", "Two woman are holding packages .",
                "The men are fighting outside a deli ."),
        Triplet("Two young children in blue jerseys , one with the number 9 , are standing .",
                "Two kids in numbered jerseys wash their hands .", 'He said "no" .'),
    ]
    assert load_pairs(path)[1] == ("Two young children in blue jerseys , one with the number 9 , are standing .",
                                   "Two kids in numbered jerseys wash their hands .")


def test_quoted_field_spanning_lines_reports_start_line(tmp_path):
    path = write(tmp_path / "t.csv", 'anchor,positive,negative\n"multi\nline",p,n\nshort\n')
    msg = error_of(load_triplets, path)
    assert "line 4" in msg and "field 'positive'" in msg and "too few fields" in msg


def test_anchor_positive_tsv_and_sentence_pairs(tmp_path):
    tsv = write(tmp_path / "t.tsv", 'anchor\tpositive\tnegative\nA "quoted" man\tA man\t\nq\tp\tn\textra\n')
    assert load_triplets(tsv) == [Triplet('A "quoted" man', "A man", None), Triplet("q", "p", "n")]
    pairs = write(tmp_path / "p.csv", "sentence1,sentence2,score\na,b,4.0\n")
    assert load_pairs(pairs) == [("a", "b")] and load_triplets(pairs) == [Triplet("a", "b", None)]


def test_jsonl_tuples(tmp_path):
    path = write(tmp_path / "t.jsonl", "\n".join([json.dumps({"anchor": "a", "positive": "p", "negative": "n"}),
                                                   json.dumps({"anchor": "a2", "positive": "p2"}),
                                                   json.dumps({"anchor": "a3", "positive": "p3", "negative": None})]))
    assert load_triplets(path) == [Triplet("a", "p", "n"), Triplet("a2", "p2"), Triplet("a3", "p3")]


def test_tuple_bad_inputs(tmp_path):
    msg = error_of(load_pairs, write(tmp_path / "h.csv", "query,doc\na,b\n"))
    assert "line 1" in msg and "sent0,sent1,[hard_neg]" in msg and "anchor,positive" in msg
    msg = error_of(load_pairs, write(tmp_path / "j.jsonl", '{"anchor": "a", "positive": "p"}\n{"anchor": 3, "positive": "p"}\n'))
    assert "line 2" in msg and "field 'anchor'" in msg and "string" in msg
    msg = error_of(load_pairs, write(tmp_path / "k.jsonl", '{"anchor": "a", "positive": "p"}\nnot json\n'))
    assert "line 2" in msg and "invalid JSON" in msg
    msg = error_of(load_triplets, write(tmp_path / "s.csv", "sent0,sent1,hard_neg\na,b\n"))
    assert "line 2" in msg and "field 'hard_neg'" in msg
    assert "empty dataset" in error_of(load_pairs, write(tmp_path / "e.csv", "sent0,sent1\n"))
    assert "empty" in error_of(load_pairs, write(tmp_path / "e2.csv", ""))
    assert "empty dataset" in error_of(load_pairs, write(tmp_path / "e3.jsonl", "\n"))
