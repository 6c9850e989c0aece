"""Quantised specs: SQ8, binary (BFlat, BHNSW, BIVF) and +rescore from memory-mapped rows; memory per vector."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from embedkit.cli.main import main
from embedkit.errors import IndexError_
from embedkit.index import FaissIndex
from index.ixhelpers import clustered_vectors, ids_for

DIM = 32
SPECS = ["SQ8", "BFlat", "BHNSW16", "BIVF4", "BFlat+rescore", "BFlat+rescore-int8", "BHNSW16+rescore",
         "BIVF4+rescore-int8", "SQ8+rescore"]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    x = clustered_vectors(2000, DIM, clusters=40, seed=1)
    rng = np.random.default_rng(2)
    queries = x[:60] + 0.3 * rng.standard_normal((60, DIM)).astype(np.float32)
    exact = np.argsort(-_unit(queries) @ _unit(x).T, axis=1)[:, :10]
    return x, queries, exact


def _recall(index, queries, exact) -> float:
    _, ids = index.search_arrays(queries, 10)
    return float(np.mean([len(set(row) & {f"doc{j}" for j in ref}) / 10 for row, ref in zip(ids, exact)]))


@pytest.mark.parametrize("spec", SPECS)
def test_spec_builds_saves_loads_and_searches_the_same(tmp_path, data, spec):
    x, queries, _ = data
    index = FaissIndex(DIM, spec)
    index.add(ids_for(len(x)), x)
    if "IVF" in spec:
        index.set_search_params(nprobe=4)
    before = index.search_arrays(queries, 5)
    index.save(tmp_path / "ix")
    loaded = FaissIndex.load(tmp_path / "ix")
    after = loaded.search_arrays(queries, 5)
    assert (before[1] == after[1]).all()
    np.testing.assert_allclose(before[0], after[0], atol=1e-5)
    assert loaded.search_params() == index.search_params()
    if "+rescore" in spec:  # rescoring reads rows memory-mapped from the generation's file
        assert isinstance(loaded.faiss_index.rows.rows, np.memmap)
        names = json.loads((tmp_path / "ix" / "meta.json").read_text())["files"]
        assert any(n.startswith("rescore-") for n in names)


def test_memory_per_vector(data, tmp_path):
    x = data[0]
    expected = {"Flat": 4 * DIM, "SQ8": DIM, "BFlat": DIM // 8, "BFlat+rescore": DIM // 8, "BHNSW16": DIM // 8}
    for spec, codes in expected.items():
        index = FaissIndex(DIM, spec)
        index.add(ids_for(len(x)), x)
        memory = index.memory()
        assert memory["codes"] == codes and memory["float32"] == 4 * DIM, spec
        assert memory["rescore_on_disk"] == (4 * DIM if "rescore" in spec else 0)
    flat, binary = FaissIndex(DIM, "Flat"), FaissIndex(DIM, "BFlat")
    for index in (flat, binary):
        index.add(ids_for(len(x)), x)
    # the serialised structure: codes plus 8-byte ids
    assert flat.memory()["index"] == pytest.approx(4 * DIM + 8, abs=1)
    assert binary.memory()["index"] == pytest.approx(DIM // 8 + 8, abs=1)
    # a loaded index reports the saved file's size (no serialisation), the same figure
    binary.save(tmp_path / "ix")
    assert FaissIndex.load(tmp_path / "ix").memory() == binary.memory()
    assert "memory" not in binary.info()  # info() stays cheap (servers call it); `index info` adds memory


def test_rescoring_recovers_what_sign_bits_lose(data):
    x, queries, exact = data
    recalls = {}
    for spec in ("BFlat", "BFlat+rescore", "BFlat+rescore-int8", "SQ8"):
        index = FaissIndex(DIM, spec)
        index.add(ids_for(len(x)), x)
        recalls[spec] = _recall(index, queries, exact)
    assert recalls["BFlat"] < 0.9
    assert recalls["BFlat+rescore"] > recalls["BFlat"] + 0.05
    assert recalls["BFlat+rescore-int8"] > recalls["BFlat"] + 0.05
    assert recalls["SQ8"] > recalls["BFlat"] + 0.05


def test_float32_rescore_scores_are_exact_cosines(data):
    x, queries, _ = data
    index = FaissIndex(DIM, "BFlat+rescore")
    index.add(ids_for(len(x)), x)
    index.set_search_params(rescore_factor=len(x))  # every vector rescored: exact search
    scores, ids = index.search_arrays(queries, 10)
    cos = _unit(queries) @ _unit(x).T
    best = np.argsort(-cos, axis=1)[:, :10]
    assert (ids == np.array([[f"doc{j}" for j in row] for row in best], dtype=object)).all()
    np.testing.assert_allclose(scores, np.take_along_axis(cos, best, axis=1), atol=1e-5)
    # a factor of 1 rescores only the binary top k: scores stay exact cosines of those hits
    index.set_search_params(rescore_factor=1)
    s1, ids1 = index.search_arrays(queries[:1], 10)
    rows = [int(i[3:]) for i in ids1[0]]
    np.testing.assert_allclose(s1[0], cos[0, rows], atol=1e-5)
    with pytest.raises(IndexError_, match="rescore_factor must be a positive integer"):
        index.set_search_params(rescore_factor=0)


def test_binary_scores_are_hamming_cosines(data):
    x, queries, _ = data
    index = FaissIndex(DIM, "BFlat")
    index.add(ids_for(len(x)), x)
    scores, ids = index.search_arrays(queries[:1], 3)
    signs = np.where(x > 0, 1.0, -1.0)
    q = np.where(queries[0] > 0, 1.0, -1.0)
    expected = signs @ q / DIM
    np.testing.assert_allclose(scores[0], np.sort(expected)[::-1][:3], atol=1e-6)


@pytest.mark.parametrize("spec", ["BFlat+rescore", "BHNSW16+rescore-int8", "BIVF4"])
def test_remove_add_compact_and_reload(tmp_path, data, spec):
    x, queries, _ = data
    index = FaissIndex(DIM, spec)
    index.add(ids_for(1000), x[:1000])
    index.save(tmp_path / "ix")
    loaded = FaissIndex.load(tmp_path / "ix")
    loaded.remove(["doc0", "doc1"])
    loaded.add(ids_for(1000, "new"), x[1000:])  # rows of a loaded (memory-mapped) index are copied, then grown
    if "HNSW" in spec:
        assert loaded.compact() == 2
    loaded.save(tmp_path / "ix")
    again = FaissIndex.load(tmp_path / "ix")
    assert len(again) == 1998
    hits = again.search(x[:2], 1)
    assert hits[0][0].id not in ("doc0", "doc1") and hits[1][0].id not in ("doc0", "doc1")
    if "IVF" in spec:
        again.set_search_params(nprobe=4)
    assert again.search(x[1500:1501], 1)[0][0].id == "new500"


def test_tune_a_binary_hnsw_with_rescoring(data):
    x, queries, exact = data
    index = FaissIndex(DIM, "BHNSW16+rescore")
    index.add(ids_for(len(x)), x)
    result = index.tune(queries, target_recall=0.8, k=10)
    assert result.param == "efSearch" and result.reached and index.tuned["value"] == result.value
    assert index.search_params() == {"efSearch": result.value, "rescore_factor": 4}
    # the reference is the float32 rows, so what the sign bits lose counts: no efSearch reaches 0.99 here
    assert not index.tune(queries, target_recall=0.99, k=10).reached


@pytest.mark.parametrize("spec, dim, message", [
    ("BFlat", 12, "multiple of 8"), ("BHNSW16+rescore", 20, "multiple of 8"),
    ("Flat+rescue", 16, "unknown suffix"), ("BHNSWx", 16, "invalid FAISS binary index spec")])
def test_bad_specs_are_refused(spec, dim, message):
    with pytest.raises(IndexError_, match=message):
        FaissIndex(dim, spec)


def test_binary_refuses_l2():
    with pytest.raises(IndexError_, match="use --metric cosine or ip"):
        FaissIndex(16, "BFlat", metric="l2")


def _saved(tmp_path, data, spec="BFlat+rescore"):
    x = data[0]
    index = FaissIndex(DIM, spec)
    index.add(ids_for(len(x)), x)
    index.save(tmp_path / "ix")
    meta = json.loads((tmp_path / "ix" / "meta.json").read_text())
    return tmp_path / "ix" / meta["roles"]["rescore"]


def test_missing_rescore_rows_are_one_line(tmp_path, data, capsys):
    rows = _saved(tmp_path, data)
    rows.unlink()
    with pytest.raises(IndexError_, match="missing"):
        FaissIndex.load(tmp_path / "ix")
    assert main(["index", "info", str(tmp_path / "ix")]) == 2
    assert "missing" in capsys.readouterr().err


@pytest.mark.parametrize("mmap", [False, True])
def test_truncated_or_damaged_rescore_rows_are_refused(tmp_path, data, mmap):
    rows = _saved(tmp_path, data, "BFlat+rescore-int8")
    size = rows.stat().st_size
    with open(rows, "r+b") as f:
        f.truncate(size - DIM)
    with pytest.raises(IndexError_, match="truncated"):
        FaissIndex.load(tmp_path / "ix", mmap=mmap)
    with open(rows, "r+b") as f:  # same size, other bytes: only --verify (SHA-256) can tell for a mapped file
        f.truncate(size)
    with pytest.raises(IndexError_, match="checksum"):
        FaissIndex.load(tmp_path / "ix", mmap=mmap, verify=True)


def test_rescore_rows_of_the_wrong_shape_are_refused(tmp_path, data):
    rows = _saved(tmp_path, data)
    meta_path = tmp_path / "ix" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["labels"] = meta["labels"] + 5  # consistent sizes and checksums, but fewer rows than labels
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(IndexError_, match="rescore rows|disagree"):
        FaissIndex.load(tmp_path / "ix")
    assert os.path.exists(rows)


def test_cli_build_search_info_with_quantised_specs(tmp_path, tiny_model_dir, capsys):
    from helpers import write_beir

    beir = write_beir(tmp_path / "beir")
    out = tmp_path / "ix"
    assert main(["index", "build", "--corpus", str(beir), "--out", str(out), "--model", str(tiny_model_dir),
                 "--spec", "BFlat+rescore-int8", "--dim", "16", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["spec"] == "BFlat+rescore-int8"
    assert main(["index", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["memory"]["codes"] == 2 and info["memory"]["rescore_on_disk"] == 16 and info["dim"] == 16
    assert main(["index", "search", str(out), "--query", "Airplanes take off", "-k", "2", "--json", "--mmap"]) == 0
    assert len(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["hits"]) == 2
    # a binary spec at a width that is not a multiple of 8: one line, nothing written
    assert main(["index", "build", "--corpus", str(beir), "--out", str(tmp_path / "bad"), "--model",
                 str(tiny_model_dir), "--spec", "BFlat", "--dim", "12"]) == 2
    err = capsys.readouterr().err
    assert "multiple of 8" in err and "Traceback" not in err and not (tmp_path / "bad").exists()


def test_eval_retrieval_with_quantised_specs(tmp_path, tiny_model_dir, capsys):
    from helpers import write_beir

    beir = write_beir(tmp_path / "beir")
    results = {}
    for spec in ("Flat", "BFlat+rescore", "SQ8"):
        assert main(["eval", "retrieval", "--data", str(beir), "--model", str(tiny_model_dir), "--index", spec]) == 0
        results[spec] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # six documents: rescoring 4 x 10 candidates covers them all, so it is exact
    assert results["BFlat+rescore"]["ndcg@10"] == pytest.approx(results["Flat"]["ndcg@10"], abs=1e-6)
    assert results["BFlat+rescore"]["recall@10_vs_exact"] == 100


@pytest.mark.parametrize("spec", ["SQ8", "BFlat+rescore-int8"])
def test_scalar_quantisers_train_on_the_whole_corpus_up_to_a_large_sample(spec):
    """One outlying vector outside a 1,000-row sample must still fall inside the learnt ranges (not clipped)."""
    from embedkit.index import build_from_vectors

    x = _unit(clustered_vectors(3000, DIM, clusters=40, seed=3))
    sampled = set(np.linspace(0, 2999, 1000).astype(np.int64).tolist())
    row = next(i for i in range(2000, 3000) if i not in sampled)
    x[row] = 0
    x[row, 0] = 1.0  # far beyond every other vector's first dimension
    index = build_from_vectors(ids_for(3000), x, spec, "ip", show_progress=False)
    decoded = index._reconstruct(np.array([row]))[0]
    assert decoded[0] > 0.95


@pytest.mark.parametrize("spec", ["BIVF16", "IVF16,Flat+rescore"])
def test_on_disk_builds_refuse_binary_and_rescore_specs(spec):
    from embedkit.index.ondisk import check_ivf_spec

    with pytest.raises(IndexError_, match="an on-disk build needs an IVF spec"):
        check_ivf_spec(DIM, spec, "cosine")
