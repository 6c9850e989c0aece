"""Hub datasets: dispatch from load_sts/load_beir, column mapping (with a fake ``datasets``), offline errors."""
from __future__ import annotations

import sys
import types

import pytest

from embedkit.data import load_beir, load_hub_beir, load_hub_sts, load_sts
from embedkit.data.hub import looks_like_hub_id
from embedkit.errors import DataError

HUB_TABLES = {
    ("mteb/stsbenchmark-sts", None, "test"): [
        {"split": "test", "genre": "main-captions", "score": 2.5, "sentence1": "A girl is styling her hair.",
         "sentence2": "A girl is brushing her hair."},
        {"split": "test", "genre": "main-news", "score": 5.0, "sentence1": "a", "sentence2": "a"},
    ],
    ("mteb/scifact", "corpus", "corpus"): [{"_id": "d1", "title": "T", "text": "x"}, {"_id": "d2", "title": "", "text": "y"}],
    ("mteb/scifact", "queries", "queries"): [{"_id": "q1", "text": "qa"}, {"_id": "q2", "text": "qb"}],
    ("mteb/scifact", "default", "test"): [{"query-id": "q1", "corpus-id": "d2", "score": 1}],
    ("BeIR/scifact", "corpus", "corpus"): [{"_id": "d1", "title": "T", "text": "x"}],
    ("BeIR/scifact", "queries", "queries"): [{"_id": "q1", "text": "qa"}],
    ("BeIR/scifact-qrels", None, "test"): [{"query-id": "q1", "corpus-id": "d9", "score": 1}],
}


@pytest.fixture()
def fake_datasets(monkeypatch):
    calls = []

    def load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        if name == "down/time":
            raise ConnectionError("Couldn't reach 'down/time' on the Hub (LocalEntryNotFoundError)\nmore detail")
        try:
            return HUB_TABLES[(name, config, split)]
        except KeyError:
            raise FileNotFoundError(f"Dataset {name} config {config} doesn't exist") from None

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    return calls


def test_looks_like_hub_id():
    assert looks_like_hub_id("mteb/scifact") and looks_like_hub_id("sentence-transformers/stsb")
    assert not looks_like_hub_id("scifact") and not looks_like_hub_id("stsb/sts-test.csv")
    assert not looks_like_hub_id("a/b/c") and not looks_like_hub_id("/abs/path")


def test_load_sts_dispatches_to_hub(fake_datasets, tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDKIT_DATA", str(tmp_path))
    ds = load_sts("mteb/stsbenchmark-sts", "test")
    assert fake_datasets == [("mteb/stsbenchmark-sts", None, "test")]
    assert ds.source == "hub:mteb/stsbenchmark-sts" and ds.name == "stsbenchmark-sts-test"
    assert ds.scores == [2.5, 5.0] and ds.pairs[0].genre == "main-captions"


def test_local_path_wins_over_hub(fake_datasets, tmp_path, monkeypatch):
    (tmp_path / "mteb").mkdir()
    (tmp_path / "mteb" / "stsbenchmark-sts").mkdir()
    (tmp_path / "mteb" / "stsbenchmark-sts" / "test.tsv").write_text("sentence1\tsentence2\tscore\na\tb\t1\n")
    monkeypatch.setenv("EMBEDKIT_DATA", str(tmp_path))
    assert load_sts("mteb/stsbenchmark-sts").source == str(tmp_path / "mteb" / "stsbenchmark-sts" / "test.tsv")
    assert fake_datasets == []


def test_hub_beir_mteb_and_beir_layouts(fake_datasets):
    ds = load_hub_beir("mteb/scifact", "test")
    assert list(ds.corpus) == ["d1", "d2"] and ds.queries == {"q1": "qa"} and ds.qrels == {"q1": {"d2": 1}}
    assert ds.name == "scifact" and ds.source == "hub:mteb/scifact"
    msg = str(pytest.raises(DataError, load_beir, "BeIR/scifact").value)  # falls back to <name>-qrels
    assert "hub:BeIR/scifact-qrels" in msg and "line 1" in msg and "'d9'" in msg


def test_hub_errors_are_one_line_and_say_pass_a_local_path(fake_datasets):
    msg = str(pytest.raises(DataError, load_hub_sts, "down/time").value)
    assert "\n" not in msg and "ConnectionError" in msg and "pass a local file or folder" in msg
    msg = str(pytest.raises(DataError, load_hub_sts, "mteb/scifact", "train").value)
    assert "FileNotFoundError" in msg and "'mteb/scifact'" in msg


def test_hub_missing_columns(fake_datasets, monkeypatch):
    monkeypatch.setitem(HUB_TABLES, ("x/bad", None, "test"), [{"sentence1": "a", "sentence2": "b", "label": 1}])
    msg = str(pytest.raises(DataError, load_hub_sts, "x/bad").value)
    assert "hub:x/bad" in msg and "line 1" in msg and "field 'score'" in msg


def test_real_datasets_offline_gives_one_line(monkeypatch, tmp_path):
    """With the real ``datasets`` and HF offline (as in the test session), an uncached hub id fails cleanly."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    monkeypatch.setenv("EMBEDKIT_DATA", str(tmp_path))
    msg = str(pytest.raises(DataError, load_sts, "embedkit-test/not-a-dataset").value)
    assert "\n" not in msg and "offline" in msg and "pass a local file or folder" in msg
