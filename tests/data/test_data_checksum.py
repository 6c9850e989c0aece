"""Content hashes: change with the data a loader reads, not with documentation or the folder's location."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from embedkit.data import data_checksum, dataset_files, load_sts, records_checksum
from embedkit.errors import DataError


def make_stsb(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "sts-test.csv").write_text("main-news\tMSRpar\t2012test\t0001\t3.0\tA man.\tA person.\n")
    (folder / "sts-dev.csv").write_text("main-news\tMSRpar\t2012test\t0002\t1.0\tA cat.\tA dog.\n")
    (folder / "README.md").write_text("about\n")
    (folder / "LICENSE.txt").write_text("license\n")
    return folder


def make_beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text('{"_id": "d", "text": "x"}\n')
    (folder / "queries.jsonl").write_text('{"_id": "q", "text": "y"}\n')
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\td\t1\n")
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq\td\t1\n")
    return folder


def test_checksum_is_16_hex_and_tracks_used_files(tmp_path):
    folder = make_stsb(tmp_path / "stsb")
    test_sum = data_checksum(folder, "test")
    assert len(test_sum) == 16 and int(test_sum, 16) >= 0
    assert dataset_files(folder, "test") == [folder / "sts-test.csv"]
    assert dataset_files(folder) == [folder / "sts-dev.csv", folder / "sts-test.csv"]  # no README / LICENSE
    assert data_checksum(folder / "sts-test.csv") == test_sum
    (folder / "README.md").write_text("edited\n")
    (folder / "sts-dev.csv").write_text("changed\n")
    assert data_checksum(folder, "test") == test_sum
    (folder / "sts-test.csv").write_text("main-news\tMSRpar\t2012test\t0001\t3.5\tA man.\tA person.\n")
    assert data_checksum(folder, "test") != test_sum


def test_checksum_is_independent_of_location(tmp_path):
    a = make_beir(tmp_path / "a" / "scifact")
    b = tmp_path / "b" / "scifact"
    shutil.copytree(a, b)
    assert data_checksum(a, "test") == data_checksum(b, "test")
    assert dataset_files(a, "test") == [a / "corpus.jsonl", a / "queries.jsonl", a / "qrels" / "test.tsv"]
    assert len(dataset_files(a)) == 4
    (b / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n")
    assert data_checksum(a, "test") == data_checksum(b, "test") and data_checksum(a) != data_checksum(b)


def test_records_checksum_follows_content(tmp_path):
    folder = make_stsb(tmp_path / "stsb")
    first = records_checksum(load_sts(folder))
    assert first == records_checksum(load_sts(folder / "sts-test.csv")) and len(first) == 16
    (folder / "sts-test.csv").write_text("main-news\tMSRpar\t2012test\t0001\t3.5\tA man.\tA person.\n")
    assert records_checksum(load_sts(folder)) != first


def test_missing_path(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDKIT_DATA", str(tmp_path))
    with pytest.raises(DataError, match="no such file"):
        data_checksum(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no data files"):
        data_checksum(tmp_path / "empty")
