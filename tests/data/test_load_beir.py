"""BEIR folders, document streams, and their bad-input messages."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedkit.data import Document, count_documents, iter_documents, load_beir
from embedkit.errors import DataError

CORPUS = [
    {"_id": "4983", "title": "Microstructural development of human newborn cerebral white matter",
     "text": "Alterations of the architecture of cerebral white matter in the developing human brain.", "metadata": {}},
    {"_id": "5836", "title": "", "text": "Côté et al. report résumé-level findings."},
    {"_id": 7912, "text": "An id given as a JSON number, and no title."},
]
QUERIES = [
    {"_id": "1", "text": "0-dimensional biomaterials show inductive properties."},
    {"_id": "3", "text": "1,000 genomes project enables mapping of genetic sequence variation."},
    {"_id": "5", "text": "A query judged only in train."},
]


def write_lines(path: Path, lines: list[str], eol: str = "\n", final_newline: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((eol.join(lines) + (eol if final_newline else "")).encode("utf-8"))
    return path


def make_beir(folder: Path, eol: str = "\n") -> Path:
    write_lines(folder / "corpus.jsonl", [json.dumps(d, ensure_ascii=False) for d in CORPUS], eol, final_newline=False)
    write_lines(folder / "queries.jsonl", [json.dumps(q) for q in QUERIES], eol)
    write_lines(folder / "qrels" / "test.tsv", ["query-id\tcorpus-id\tscore", "1\t4983\t1", "3\t5836\t2",
                                                "3\t7912\t0"], eol, final_newline=False)
    write_lines(folder / "qrels" / "train.tsv", ["query-id\tcorpus-id\tscore", "5\t4983\t1"], eol)
    return folder


def error_of(fn, *args) -> str:
    with pytest.raises(DataError) as info:
        fn(*args)
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_load_beir_values(tmp_path, eol):
    ds = load_beir(make_beir(tmp_path / "scifact", eol))
    assert ds.name == "scifact" and ds.split == "test" and ds.source == str(tmp_path / "scifact")
    assert list(ds.corpus) == ["4983", "5836", "7912"]
    assert ds.corpus["5836"] == Document("5836", "", "Côté et al. report résumé-level findings.")
    assert ds.corpus["7912"].title == "" and ds.corpus["4983"].title.startswith("Microstructural")
    assert ds.queries == {"1": QUERIES[0]["text"], "3": QUERIES[1]["text"]}  # only queries judged in test
    assert ds.qrels == {"1": {"4983": 1}, "3": {"5836": 2, "7912": 0}}
    train = load_beir(tmp_path / "scifact", "train")
    assert list(train.queries) == ["5"] and train.qrels == {"5": {"4983": 1}}


def test_full_text_matches_mteb_convention():
    assert Document("1", "Title", "Body text.").full_text == "Title Body text."
    assert Document("1", "", " Body text. ").full_text == "Body text."


def test_qrels_without_header(tmp_path):
    folder = make_beir(tmp_path / "b")
    write_lines(folder / "qrels" / "test.tsv", ["1\t4983\t1"])
    assert load_beir(folder).qrels == {"1": {"4983": 1}}


def test_missing_files_are_named(tmp_path):
    folder = make_beir(tmp_path / "b")
    msg = error_of(load_beir, folder, "dev")
    assert "qrels/dev.tsv" in msg and "test, train" in msg and str(folder) in msg
    (folder / "queries.jsonl").unlink()
    msg = error_of(load_beir, folder)
    assert "queries.jsonl" in msg and "corpus.jsonl" not in msg
    msg = error_of(load_beir, folder / "corpus.jsonl")
    assert "BEIR folder" in msg


@pytest.mark.parametrize("file, lines, line, field, words", [
    ("corpus.jsonl", ['{"_id": "1", "text": "ok"}', '{"_id": "2", "text": '], 2, None, "invalid JSON"),
    ("corpus.jsonl", ['{"_id": "1", "text": "ok"}', '{"title": "t", "text": "no id"}'], 2, "_id", "missing"),
    ("corpus.jsonl", ['{"_id": "1", "text": "ok"}', '{"_id": "2", "title": "no text"}'], 2, "text", "missing"),
    ("corpus.jsonl", ['{"_id": "1", "text": "ok"}', '{"_id": "1", "text": "again"}'], 2, "_id", "duplicate"),
    ("corpus.jsonl", ['["not", "an", "object"]'], 1, None, "JSON object"),
    ("queries.jsonl", ['{"_id": "1", "text": "q"}', '{"text": "no id"}'], 2, "_id", "missing"),
    ("qrels/test.tsv", ["query-id\tcorpus-id\tscore", "1\t4983\t1", "99\t4983\t1"], 3, "query-id", "'99'"),
    ("qrels/test.tsv", ["query-id\tcorpus-id\tscore", "1\t404\t1"], 2, "corpus-id", "'404'"),
    ("qrels/test.tsv", ["query-id\tcorpus-id\tscore", "1\t4983\t1", "3\t5836\t0.5"], 3, "score", "integer"),
    ("qrels/test.tsv", ["query-id\tcorpus-id\tscore", "1\t4983\t1", "3\t5836\tyes"], 3, "score", "integer"),
    ("qrels/test.tsv", ["query-id\tcorpus-id\tscore", "1 4983 1"], 2, "corpus-id", "too few fields"),
])
def test_bad_lines_name_file_line_field(tmp_path, file, lines, line, field, words):
    folder = make_beir(tmp_path / "b")
    write_lines(folder / file, lines)
    msg = error_of(load_beir, folder)
    assert str(folder / file) in msg and f"line {line}" in msg and words in msg
    if field:
        assert f"field '{field}'" in msg


def test_empty_corpus_queries_qrels(tmp_path):
    for file, lines in [("corpus.jsonl", [""]), ("queries.jsonl", []), ("qrels/test.tsv", ["query-id\tcorpus-id\tscore"])]:
        folder = make_beir(tmp_path / file.replace("/", "_"))
        write_lines(folder / file, lines, final_newline=False)
        msg = error_of(load_beir, folder)
        assert str(folder / file) in msg and "empty" in msg


def test_non_utf8_corpus(tmp_path):
    folder = make_beir(tmp_path / "b")
    (folder / "corpus.jsonl").write_bytes(b'{"_id": "4983", "text": "ok"}\n{"_id": "5836", "text": "caf\xe9"}\n')
    msg = error_of(load_beir, folder)
    assert "corpus.jsonl" in msg and "line 2" in msg and "UTF-8" in msg


def test_iter_documents_from_folder_file_and_text(tmp_path):
    folder = make_beir(tmp_path / "b")
    docs = list(iter_documents(folder))
    assert [d.id for d in docs] == ["4983", "5836", "7912"] and count_documents(folder) == 3
    assert list(iter_documents(folder / "corpus.jsonl")) == docs
    text = write_lines(tmp_path / "docs.txt", ["first doc", "", "third\u2028line with a unicode separator"],
                       eol="\r\n", final_newline=False)
    docs = list(iter_documents(text))
    assert docs == [Document("0", "", "first doc"), Document("2", "", "third\u2028line with a unicode separator")]
    assert count_documents(text) == 2


def test_iter_documents_streams_lazily_and_reports_bad_lines(tmp_path):
    path = write_lines(tmp_path / "c.jsonl", ['{"_id": "a", "text": "x"}', "{broken"])
    stream = iter_documents(path)
    assert next(stream).id == "a"  # documents before the bad line arrive first
    with pytest.raises(DataError, match="line 2"):
        next(stream)
    empty = write_lines(tmp_path / "empty.txt", ["", "  "])
    assert count_documents(empty) == 0
    with pytest.raises(DataError, match="empty corpus"):
        list(iter_documents(empty))
    msg = error_of(count_documents, tmp_path)
    assert "corpus.jsonl" in msg


def test_progress_bar_on_request(tmp_path, capsys):
    folder = make_beir(tmp_path / "b")
    assert len(load_beir(folder, show_progress=True).corpus) == 3
    assert "load corpus.jsonl" in capsys.readouterr().err
    load_beir(folder)
    assert "load corpus.jsonl" not in capsys.readouterr().err  # small corpora load silently
