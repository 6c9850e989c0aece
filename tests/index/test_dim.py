"""``--dim N`` (Matryoshka truncation) on encode, eval sts, eval retrieval, index build and mine, with the
tiny random model (width 32): truncate, then renormalise; an index records the width and applies it to queries."""
from __future__ import annotations

import json

import numpy as np
import pytest

from embedkit.cli.main import main
from helpers import write_beir, write_stsb
from index.ixhelpers import DOCS, error_line, write_corpus


def one_json_line(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _full(tiny_model_dir, texts):
    from embedkit.encoding import encode
    from embedkit.models import load_model

    return encode(load_model(str(tiny_model_dir), device="cpu"), texts)


def test_load_model_dim_truncates_renormalises_and_changes_the_fingerprint(tiny_model_dir):
    from embedkit.encoding import cached_encode, encode
    from embedkit.models import embedding_dim, load_model, model_fingerprint, model_width

    texts = [d[2] for d in DOCS]
    full = _full(tiny_model_dir, texts)
    model = load_model(str(tiny_model_dir), device="cpu", dim=8)
    assert embedding_dim(model) == 8 and model_width(model) == 32
    cut = encode(model, texts)
    expected = full[:, :8] / np.linalg.norm(full[:, :8], axis=1, keepdims=True)
    assert cut.shape == (5, 8)
    np.testing.assert_allclose(cut, expected, atol=1e-5)
    # the cache must not hand the full-width vectors of the same weights to the truncated model
    wide = load_model(str(tiny_model_dir), device="cpu")
    assert cached_encode(wide, texts).shape == (5, 32)
    assert model_fingerprint(wide) != model_fingerprint(model)
    np.testing.assert_allclose(cached_encode(model, texts), expected, atol=1e-5)
    # sentence-transformers' own encode path gives the same rows
    np.testing.assert_allclose(encode(model, texts, backend="sentence-transformers"), expected, atol=1e-5)
    # the full width is no cut at all: the fingerprint stays the untruncated one
    assert model_fingerprint(load_model(str(tiny_model_dir), device="cpu", dim=32)) == model_fingerprint(wide)


def test_encode_cli_dim(tmp_path, tiny_model_dir, capsys):
    texts = [d[2] for d in DOCS]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    assert main(["encode", "--input", str(tmp_path / "in.txt"), "--out", str(tmp_path / "o.npy"),
                 "--model", str(tiny_model_dir), "--dim", "16", "--backend", "torch"]) == 0
    out = np.load(tmp_path / "o.npy")
    full = _full(tiny_model_dir, texts)
    np.testing.assert_allclose(out, full[:, :16] / np.linalg.norm(full[:, :16], axis=1, keepdims=True), atol=1e-5)


@pytest.mark.parametrize("command", ["encode", "eval-sts", "index-build", "mine"])
def test_dim_wider_than_the_model_is_one_line_and_writes_nothing(tmp_path, tiny_model_dir, capsys, command):
    (tmp_path / "in.txt").write_text("a\nb\n")
    beir = write_beir(tmp_path / "beir", split="train")
    argv = {"encode": ["encode", "--input", str(tmp_path / "in.txt"), "--out", str(tmp_path / "out.npy")],
            "eval-sts": ["eval", "sts", "--data", str(write_stsb(tmp_path / "sts-test.csv").parent)],
            "index-build": ["index", "build", "--corpus", str(beir), "--out", str(tmp_path / "out")],
            "mine": ["mine", "--data", str(beir), "--out", str(tmp_path / "out.jsonl")]}[command]
    assert main(argv + ["--model", str(tiny_model_dir), "--dim", "33"]) == 2
    assert "--dim must be in 1..32" in error_line(capsys)
    assert not any(p.name.startswith("out") for p in tmp_path.iterdir())


def test_eval_sts_and_retrieval_with_dim(tmp_path, tiny_model_dir, capsys):
    write_stsb(tmp_path / "sts-test.csv"); sts = tmp_path
    assert main(["eval", "sts", "--data", str(sts), "--model", str(tiny_model_dir)]) == 0
    full = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["eval", "sts", "--data", str(sts), "--model", str(tiny_model_dir), "--dim", "4"]) == 0
    cut = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert cut["spearman"] != full["spearman"]  # 4 of 32 random dimensions rank the pairs differently

    beir = write_beir(tmp_path / "beir")
    results = {}
    for dim in ("32", "4"):
        for index in ("exact", "Flat"):
            argv = ["eval", "retrieval", "--data", str(beir), "--model", str(tiny_model_dir), "--dim", dim]
            assert main(argv + ([] if index == "exact" else ["--index", index])) == 0
            results[dim, index] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # an exact index at the same width agrees with mteb's exact search; the width changes the result
    assert results["4", "Flat"]["ndcg@10"] == pytest.approx(results["4", "exact"]["ndcg@10"], abs=1e-6)
    assert results["32", "exact"]["ndcg@10"] == pytest.approx(results["32", "Flat"]["ndcg@10"], abs=1e-6)
    assert results["4", "exact"] != results["32", "exact"]


def test_index_records_dim_and_applies_it_to_queries(tmp_path, tiny_model_dir, capsys):
    corpus = write_corpus(tmp_path / "corpus.jsonl", DOCS)
    out = tmp_path / "ix"
    assert main(["index", "build", "--corpus", str(corpus), "--out", str(out), "--model", str(tiny_model_dir),
                 "--dim", "8", "--json"]) == 0
    assert one_json_line(capsys)["dim"] == 8
    assert main(["index", "info", str(out), "--json"]) == 0
    info = one_json_line(capsys)
    assert info["dim"] == 8 and info["build"]["truncate_dim"] == 8

    query = DOCS[2][2]
    assert main(["index", "search", str(out), "--query", query, "-k", "5", "--json"]) == 0
    hits = one_json_line(capsys)["hits"]
    full = _full(tiny_model_dir, [d[2] for d in DOCS] + [query])  # the model's title+text differ; check ranks
    assert hits[0]["score"] == pytest.approx(max(h["score"] for h in hits))
    # the same search through the Python API with a query truncated by hand gives the same scores
    from embedkit.index import FaissIndex
    from embedkit.index.build import truncate_embeddings

    api = FaissIndex.load(out).search(truncate_embeddings(full[-1:], 8), 5)[0]
    assert [h.id for h in api] == [h["id"] for h in hits]
    assert [h.score for h in api] == pytest.approx([h["score"] for h in hits], abs=1e-5)

    # --model given explicitly (same weights) is truncated the same way, so the fingerprint check passes
    assert main(["index", "search", str(out), "--query", query, "--model", str(tiny_model_dir), "--json"]) == 0
    capsys.readouterr()


def test_index_build_from_full_width_embeddings_with_dim(tmp_path, tiny_model_dir, capsys):
    corpus = write_corpus(tmp_path / "corpus.jsonl", DOCS)
    vectors = _full(tiny_model_dir, [d[2] for d in DOCS])
    np.save(tmp_path / "e.npy", vectors)
    out = tmp_path / "ix"
    assert main(["index", "build", "--embeddings", str(tmp_path / "e.npy"), "--corpus", str(corpus), "--out",
                 str(out), "--model", str(tiny_model_dir), "--dim", "8", "--no-bm25", "--json"]) == 0
    assert one_json_line(capsys)["dim"] == 8
    # embeddings of another width are refused in one line, nothing written
    np.save(tmp_path / "bad.npy", vectors[:, :20])
    assert main(["index", "build", "--embeddings", str(tmp_path / "bad.npy"), "--corpus", str(corpus), "--out",
                 str(tmp_path / "ix2"), "--model", str(tiny_model_dir), "--dim", "8"]) == 2
    assert "dimension 20" in error_line(capsys) and not (tmp_path / "ix2").exists()


def test_index_add_with_vectors_of_another_width_is_refused(tmp_path, tiny_model_dir, capsys):
    corpus = write_corpus(tmp_path / "corpus.jsonl", DOCS[:3])
    out = tmp_path / "ix"
    assert main(["index", "build", "--corpus", str(corpus), "--out", str(out), "--model", str(tiny_model_dir),
                 "--dim", "8", "--no-bm25"]) == 0
    capsys.readouterr()
    np.save(tmp_path / "e.npy", np.ones((1, 32), dtype=np.float32))
    (tmp_path / "ids.txt").write_text("new\n")
    before = json.loads((out / "meta.json").read_text())["generation"]
    assert main(["index", "add", str(out), "--embeddings", str(tmp_path / "e.npy"), "--ids",
                 str(tmp_path / "ids.txt")]) == 2
    assert "dimension 8" in error_line(capsys)
    assert json.loads((out / "meta.json").read_text())["generation"] == before


def test_mine_with_dim(tmp_path, tiny_model_dir, capsys):
    beir = write_beir(tmp_path / "beir", split="train")
    rows = {}
    for dim in ("32", "2"):
        out = tmp_path / f"m{dim}.jsonl"
        assert main(["mine", "--data", str(beir), "--model", str(tiny_model_dir), "--dim", dim, "--out", str(out),
                     "--range", "0:3", "--sampling", "top"]) == 0
        rows[dim] = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows["32"] != rows["2"]  # 2 of 32 random dimensions rank the documents differently
