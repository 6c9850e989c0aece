"""``embedkit index ...`` through embedkit.cli.main.main, with the tiny random model."""
from __future__ import annotations

import json

import numpy as np
import pytest

from embedkit.cli.main import main
from index.ixhelpers import DOCS, error_line, write_corpus


@pytest.fixture()
def built(tmp_path, tiny_model_dir, capsys):
    corpus = write_corpus(tmp_path / "corpus.jsonl", DOCS[:4])
    out = tmp_path / "ix"
    assert main(["index", "build", "--corpus", str(corpus), "--out", str(out), "--model", str(tiny_model_dir),
                 "--spec", "HNSW16", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["count"] == 4 and summary["spec"] == "HNSW16" and summary["bm25"] is True
    return out


def one_json_line(capsys) -> dict:
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_info_and_search(built, capsys):
    assert main(["index", "info", str(built), "--json", "--verify"]) == 0
    info = one_json_line(capsys)
    assert {k: info[k] for k in ("count", "dim", "spec", "metric", "model")} == {
        "count": 4, "dim": 32, "spec": "HNSW16", "metric": "cosine", "model": "st"}
    assert info["model_source"].endswith("st") and info["bm25"] == 4

    assert main(["index", "search", str(built), "--query", "Cats purr and chase mice around the house.",
                 "-k", "10", "--json"]) == 0
    hits = one_json_line(capsys)["hits"]
    assert len(hits) == 4 and set(hits[0]) >= {"id", "score", "title", "text"}
    for mode in ("bm25", "hybrid"):
        assert main(["index", "search", str(built), "--query", "honey bees migrate", "-k", "2", "--json",
                     "--mode", mode]) == 0
        hits = one_json_line(capsys)["hits"]
        assert hits[0]["id"] == "c4"  # the only document with a query term ("migrate")
    assert main(["index", "search", str(built), "--query", "dogs"]) == 0
    assert "query: dogs" in capsys.readouterr().out


def test_add_remove_tune(built, tmp_path, capsys):
    more = write_corpus(tmp_path / "more.jsonl", DOCS[4:])
    assert main(["index", "add", str(built), "--corpus", str(more), "--json"]) == 0
    assert one_json_line(capsys)["count"] == 5
    assert main(["index", "search", str(built), "--query", "pollinate", "--mode", "bm25", "--json"]) == 0
    assert one_json_line(capsys)["hits"][0]["id"] == "c5"

    assert main(["index", "remove", str(built), "--ids", "c1", "c5", "--json"]) == 0
    assert one_json_line(capsys)["count"] == 3
    assert main(["index", "search", str(built), "--query", "pollinate", "--mode", "bm25", "--json"]) == 0
    assert one_json_line(capsys)["hits"] == []

    queries = tmp_path / "queries.txt"
    queries.write_text("cats\nfish in the sea\nsinging birds\n")
    assert main(["index", "tune", str(built), "--queries", str(queries), "--target-recall", "0.9", "--json"]) == 0
    result = one_json_line(capsys)
    assert result["param"] == "efSearch" and result["reached"]
    assert main(["index", "info", str(built), "--json"]) == 0
    assert one_json_line(capsys)["search_params"] == {"efSearch": result["value"]}


def test_precomputed_embeddings(tmp_path, tiny_model_dir, capsys):
    vectors = np.random.default_rng(0).standard_normal((3, 32)).astype(np.float32)
    np.save(tmp_path / "emb.npy", vectors)
    (tmp_path / "ids.txt").write_text("a\nb\nc\n")
    out = tmp_path / "ix"
    assert main(["index", "build", "--embeddings", str(tmp_path / "emb.npy"), "--ids", str(tmp_path / "ids.txt"),
                 "--out", str(out), "--model", str(tiny_model_dir), "--json"]) == 0
    assert one_json_line(capsys)["bm25"] is False and (out / "meta.json").exists()
    np.save(tmp_path / "bad.npy", vectors[:, :5])
    assert main(["index", "build", "--embeddings", str(tmp_path / "bad.npy"), "--ids", str(tmp_path / "ids.txt"),
                 "--out", str(tmp_path / "ix2"), "--model", str(tiny_model_dir)]) == 2
    assert "dimension 5" in error_line(capsys)


@pytest.mark.parametrize("argv, message", [
    (["index", "add", "{ix}", "--corpus", "{dup}"], "already in the index: 'c1'"),
    (["index", "remove", "{ix}", "--ids", "c1", "nope"], "not in the index: 'nope'"),
    (["index", "search", "{tmp}", "--query", "x"], "not an embedkit index folder"),
    (["index", "info", "{tmp}/absent"], "no such embedkit index folder"),
    (["index", "build", "--corpus", "{dup}", "--out", "{ix}", "--model", "{model}"], "already exists there; pass --force"),
    (["index", "build", "--corpus", "{empty}", "--out", "{tmp}/new", "--model", "{model}"], "empty corpus"),
    (["index", "build", "--corpus", "{dup}", "--out", "{tmp}/new", "--model", "{model}", "--spec", "IVF64,Flat"],
     "needs at least 64 training vectors"),
    (["index", "search", "{ix}", "--query", "x", "-k", "0"], "-k must be at least 1"),
])
def test_bad_input_is_one_line_and_changes_nothing(built, tmp_path, tiny_model_dir, capsys, argv, message):
    dup = write_corpus(tmp_path / "dup.jsonl", [("zz", "", "new doc"), DOCS[0]])
    (tmp_path / "empty.jsonl").write_text("")
    before = sorted(p.name for p in built.iterdir())
    argv = [a.format(ix=built, tmp=tmp_path, dup=dup, empty=tmp_path / "empty.jsonl", model=tiny_model_dir)
            for a in argv]
    assert main(argv) == 2
    assert message in error_line(capsys)
    assert sorted(p.name for p in built.iterdir()) == before
    assert not (tmp_path / "new").exists()
    assert main(["index", "info", str(built), "--json", "--verify"]) == 0
    assert one_json_line(capsys)["count"] == 4


def test_token_limit_of_the_build_is_applied_again(tmp_path, tiny_model_dir, capsys):
    corpus = write_corpus(tmp_path / "corpus.jsonl", DOCS[:4])
    out = tmp_path / "cut"
    assert main(["index", "build", "--corpus", str(corpus), "--out", str(out), "--model", str(tiny_model_dir),
                 "--max-seq-length", "6", "--json"]) == 0
    capsys.readouterr()
    # without the recorded limit the reloaded model's fingerprint would differ and both would be refused
    assert main(["index", "search", str(out), "--query", "Cats purr", "--json"]) == 0
    assert len(one_json_line(capsys)["hits"]) == 4
    assert main(["index", "add", str(out), "--corpus", str(write_corpus(tmp_path / "more.jsonl", DOCS[4:])),
                 "--json"]) == 0
    assert one_json_line(capsys)["count"] == 5


def test_model_mismatch_needs_force(built, tmp_path, capsys):
    from helpers import make_tiny_model_dir

    other = make_tiny_model_dir(tmp_path / "other", seed=1)
    more = write_corpus(tmp_path / "more.jsonl", DOCS[4:])
    assert main(["index", "add", str(built), "--corpus", str(more), "--model", str(other)]) == 2
    assert "built with model st" in error_line(capsys)
    assert main(["index", "search", str(built), "--query", "x", "--model", str(other)]) == 2
    assert "--force" in error_line(capsys)
    assert main(["index", "add", str(built), "--corpus", str(more), "--model", str(other), "--force", "--json"]) == 0
    assert one_json_line(capsys)["count"] == 5


def test_a_failed_bm25_write_leaves_both_sides_as_they_were(built, tmp_path, capsys, monkeypatch):
    """Both sides switch with one manifest: a save that fails while writing BM25 changes neither."""
    from embedkit.index import BM25Index

    more = tmp_path / "more.txt"
    more.write_text("Bees pollinate flowers in spring.\n", encoding="utf-8")

    def crash(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(BM25Index, "write_files", crash)
    assert main(["index", "add", str(built), "--corpus", str(more)]) == 2
    assert "could not save: No space left on device; the index is unchanged" in error_line(capsys)
    monkeypatch.undo()
    for mode in ("dense", "bm25", "hybrid"):
        assert main(["index", "search", str(built), "--query", "bees pollinate", "--mode", mode, "--json"]) == 0
        assert "0" not in {h["id"] for h in one_json_line(capsys)["hits"]}
    assert main(["index", "verify", str(built)]) == 0
    assert "ok (" in capsys.readouterr().out


def test_verify_names_each_problem(built, capsys):
    assert main(["index", "verify", str(built), "--json"]) == 0
    report = one_json_line(capsys)
    assert report["ok"] and report["problems"] == [] and report["files"] >= 7 and report["leftovers"] == []
    meta = json.loads((built / "meta.json").read_text())
    docs, bm25_docs = meta["roles"]["docs"], meta["bm25"]["roles"]["docs"]
    with open(built / docs, "r+b") as f:  # same size, one byte changed
        f.seek(3)
        byte = f.read(1)
        f.seek(3)
        f.write(bytes([byte[0] ^ 1]))
    (built / bm25_docs).write_bytes((built / bm25_docs).read_bytes()[:-5])
    (built / "index-19990101T000000-abcdef.faiss").write_bytes(b"left by a crash")
    assert main(["index", "verify", str(built)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert f"{built / docs}: checksum mismatch (the file is corrupt)" in lines[:2]
    assert any(line.startswith(f"{built / bm25_docs}: truncated or overwritten (") for line in lines[:2])
    assert lines[2].startswith(f"{built}: 1 files left by an interrupted save") and len(lines) == 3
    assert main(["index", "verify", str(built / "absent")]) == 2
    assert "no such embedkit index folder" in error_line(capsys)


def test_upsert_replaces_on_both_sides(built, tmp_path, capsys):
    changed = write_corpus(tmp_path / "changed.jsonl", [("c1", "Cats", "Cats now juggle oranges."), DOCS[4]])
    assert main(["index", "add", str(built), "--corpus", str(changed)]) == 2
    assert "already in the index: 'c1' (use upsert to replace them" in error_line(capsys)
    assert main(["index", "upsert", str(built), "--corpus", str(changed), "--json"]) == 0
    assert one_json_line(capsys)["count"] == 5
    assert main(["index", "search", str(built), "--query", "juggle oranges", "--mode", "bm25", "--json"]) == 0
    assert [h["id"] for h in one_json_line(capsys)["hits"]] == ["c1"]
    assert main(["index", "search", str(built), "--query", "chase mice", "--mode", "bm25", "--json"]) == 0
    assert one_json_line(capsys)["hits"] == []  # the old text of c1 is gone from BM25
    assert main(["index", "verify", str(built)]) == 0
