"""Crash-safe saving and refusal of damaged index folders."""
from __future__ import annotations

import json

import faiss
import numpy as np
import pytest
from index.ixhelpers import DIM, clustered_vectors, ids_for

from embedkit.errors import IndexError_
from embedkit.index import BM25Index, FaissIndex, IndexFolder
from embedkit.index import storage
from embedkit.index.docstore import DocStore


def saved(tmp_path, spec="Flat", n=50):
    index = FaissIndex(DIM, spec)
    x = clustered_vectors(n)
    index.add(ids_for(n), x, texts=[f"t{i}" for i in range(n)])
    folder = index.save(tmp_path / "ix")
    return index, x, folder


def files(folder, prefix):
    return [p for p in folder.iterdir() if p.name.startswith(prefix)]


def test_layout_and_manifest(tmp_path):
    index, _, folder = saved(tmp_path)
    meta = json.loads((folder / "meta.json").read_text())
    for key in ("embedkit", "faiss", "spec", "metric", "dim", "count", "normalized", "model", "created", "tuned",
                "files", "search_params"):
        assert key in meta
    assert meta["faiss"] == faiss.__version__ and meta["count"] == 50 and meta["normalized"] is True
    assert all(set(r) == {"bytes", "sha256"} for r in meta["files"].values())
    assert len(files(folder, "index-")) == 1 and len(files(folder, "docs-")) == 1
    index.add(["extra"], clustered_vectors(1))
    index.save(folder)  # a second save leaves only the new generation behind
    assert len(files(folder, "index-")) == 1 and FaissIndex.load(folder).info()["count"] == 51


def test_no_pickle_in_the_folder(tmp_path):
    index, _, folder = saved(tmp_path, "HNSW16")
    index.remove(["doc1"])
    index.save(folder)
    arrays = [np.load(path, allow_pickle=False) for path in folder.iterdir() if path.suffix == ".npy"]
    assert arrays and all(a.dtype != object for a in arrays)  # np.load raises on an object (pickled) array
    pickled = [p.name for p in folder.rglob("*") if p.is_file() and p.read_bytes()[:1] == b"\x80"]
    assert not pickled  # no file is a pickle stream (protocol 2+ starts with 0x80)


@pytest.mark.parametrize("broken", ["faiss", "docs", "manifest"])
def test_crash_mid_save_leaves_the_previous_index(tmp_path, monkeypatch, broken):
    index, x, folder = saved(tmp_path)
    before = FaissIndex.load(folder).search(x[:3], 5)
    index.add(["late"], clustered_vectors(1, seed=9))

    def crash(*args, **kwargs):
        raise OSError("simulated crash: disk full")

    if broken == "faiss":
        real_write = storage.NewFile.write

        def half_written(self, data):  # write part of the FAISS file to disk, then die
            if self.path.name.startswith("index-"):
                real_write(self, bytes(data)[:10])
                self._flush_buffer()
                crash()
            return real_write(self, data)
        monkeypatch.setattr(storage.NewFile, "write", half_written)
    elif broken == "docs":
        monkeypatch.setattr(DocStore, "write", crash)
    else:
        monkeypatch.setattr("embedkit.index.storage.switch_manifest", crash)
    with pytest.raises(IndexError_, match="could not save: simulated crash: disk full; the index is unchanged"):
        index.save(folder)
    monkeypatch.undo()
    loaded = FaissIndex.load(folder, verify=True)
    assert len(loaded) == 50 and "late" not in loaded
    assert [[h.id for h in r] for r in loaded.search(x[:3], 5)] == [[h.id for h in r] for r in before]
    assert len(files(folder, "index-")) == 1 and not files(folder, ".meta")  # the failed generation was cleaned up


def test_truncated_faiss_file_is_refused(tmp_path):
    _, _, folder = saved(tmp_path)
    path = files(folder, "index-")[0]
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(IndexError_, match="truncated"):
        FaissIndex.load(folder)


def test_corrupt_header_is_refused(tmp_path):
    _, _, folder = saved(tmp_path)
    path = files(folder, "index-")[0]
    data = bytearray(path.read_bytes())
    data[:4] = b"XXXX"
    path.write_bytes(bytes(data))
    with pytest.raises(IndexError_, match="checksum mismatch"):
        FaissIndex.load(folder)
    with pytest.raises(IndexError_, match="bad header"):
        FaissIndex.load(folder, mmap=True)


def test_corrupt_body_is_refused_before_faiss_reads_it(tmp_path):
    _, _, folder = saved(tmp_path)
    path = files(folder, "index-")[0]
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF  # a flipped bit inside a stored vector: same size, same header
    path.write_bytes(bytes(data))
    with pytest.raises(IndexError_, match="checksum mismatch"):
        FaissIndex.load(folder)  # every file read into memory is checked first
    FaissIndex.load(folder, mmap=True)  # a mapped file is not read through, unless ...
    with pytest.raises(IndexError_, match="checksum mismatch"):
        FaissIndex.load(folder, mmap=True, verify=True)  # ... verify asks for it


def test_corrupt_faiss_structure_is_a_clear_error(tmp_path):
    _, _, folder = saved(tmp_path)
    path = files(folder, "index-")[0]
    data = bytearray(path.read_bytes())
    data[4:40] = b"\xff" * 36  # header intact, dimensions garbage
    path.write_bytes(bytes(data))
    with pytest.raises(IndexError_, match="checksum mismatch"):
        FaissIndex.load(folder)
    with pytest.raises(IndexError_, match="corrupt FAISS file|disagree"):
        FaissIndex.load(folder, mmap=True)  # mapped without a checksum: FAISS's own checks refuse it


def rewrite_consistently(folder, path, data: bytes) -> None:
    """Replace a data file and its manifest record: damage that checksums cannot see (a writer's bug)."""
    import hashlib

    path.write_bytes(data)
    meta = json.loads((folder / "meta.json").read_text())
    meta["files"][path.name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (folder / "meta.json").write_text(json.dumps(meta))


def test_corrupt_docs_row(tmp_path):
    _, _, folder = saved(tmp_path)
    path = files(folder, "docs-")[0]
    text = path.read_text()
    path.write_text(text.replace('{"id": "doc3"', '{"iX": "doc3"', 1))
    with pytest.raises(IndexError_, match="checksum mismatch"):
        FaissIndex.load(folder)
    rewrite_consistently(folder, path, text.replace('{"id": "doc3"', '{"iX": "doc3"', 1).encode())
    with pytest.raises(IndexError_, match="line 4: corrupt document row"):
        FaissIndex.load(folder)


def test_missing_file(tmp_path):
    _, _, folder = saved(tmp_path)
    files(folder, "docs-")[0].unlink()
    with pytest.raises(IndexError_, match="missing"):
        FaissIndex.load(folder)


def test_not_an_index(tmp_path):
    (tmp_path / "some.txt").write_text("hello")
    with pytest.raises(IndexError_, match="not an embedkit index folder"):
        FaissIndex.load(tmp_path)
    with pytest.raises(IndexError_, match="no such"):
        FaissIndex.load(tmp_path / "absent")
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(IndexError_, match="corrupt manifest"):
        FaissIndex.load(tmp_path)
    (tmp_path / "meta.json").write_text('{"files": {}, "format": "other"}')
    with pytest.raises(IndexError_, match="not an embedkit FAISS index manifest"):
        FaissIndex.load(tmp_path)


def test_save_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    index = FaissIndex(DIM)
    with pytest.raises(IndexError_, match="not empty and not an embedkit index"):
        index.save(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "precious"


def test_bm25_lives_beside_and_survives_faiss_saves(tmp_path):
    index, _, folder = saved(tmp_path)
    bm25 = BM25Index()
    bm25.index(index.ids(), [f"cats purr {i}" if i == "doc7" else "dogs bark" for i in index.ids()])
    IndexFolder(index, bm25).save(folder)
    index.set_search_params()
    index.save(folder)  # a FAISS-only save that keeps the documents keeps the BM25 files (and their pairing)
    assert BM25Index.load(folder).search(["cat"], 1)[0][0].id == "doc7"
    FaissIndex.load(folder, verify=True)
    index.add(["extra"], clustered_vectors(1))
    with pytest.raises(IndexError_, match="also holds a BM25 index"):
        index.save(folder)  # it would leave BM25 one set of documents behind
    assert len(BM25Index.load(folder)) == len(FaissIndex.load(folder)) == 50


def test_an_interrupt_just_after_the_switch_keeps_the_new_files(tmp_path, monkeypatch):
    """Ctrl-C between ``os.replace`` and the end of the save: the new manifest names the new files, so they stay."""
    index, _, folder = saved(tmp_path)
    index.add(["late"], clustered_vectors(1, seed=9))
    real_replace = storage.os.replace

    def replace_then_interrupt(src, dst):
        real_replace(src, dst)
        raise KeyboardInterrupt

    monkeypatch.setattr(storage.os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        index.save(folder)
    monkeypatch.undo()
    loaded = FaissIndex.load(folder)
    assert "late" in loaded and len(loaded) == 51


def test_a_format_1_folder_refuses_updates_and_is_replaced_by_a_rebuild(tmp_path):
    """A folder whose BM25 side an older embedkit kept under ``bm25.json``: an update is refused (it would keep
    a BM25 side this version cannot read), while building anew over it (``index build --force``) replaces it."""
    folder = FaissIndex(DIM)
    folder.add(ids_for(20), clustered_vectors(20))
    path = folder.save(tmp_path / "ix")
    (path / storage.LEGACY_BM25_MANIFEST).write_text("{}")
    (path / "bm25-old.npz").write_bytes(b"format 1")
    with pytest.raises(IndexError_, match="older embedkit"):
        with IndexFolder.update(path) as loaded:
            loaded.index.add(["new"], clustered_vectors(1, seed=1))
    fresh = FaissIndex(DIM)
    fresh.add(ids_for(5, "fresh"), clustered_vectors(5, seed=2))
    IndexFolder(fresh, None).save(path)
    assert not (path / storage.LEGACY_BM25_MANIFEST).exists() and not (path / "bm25-old.npz").exists()
    assert IndexFolder.load(path).index.info()["count"] == 5 and IndexFolder.verify(path) == []
