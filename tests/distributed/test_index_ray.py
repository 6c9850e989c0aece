"""Index folders from the cluster's output: an IVF-PQ index built with shards filled in Ray tasks and
merged on disk searches exactly like the index built in one process from the same vectors."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from embedkit.distributed import EmbeddingsFolder
from embedkit.index import FaissIndex

SPEC = "IVF32,PQ8"


def embedkit(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "embedkit.cli.main", *args], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def top10(index: FaissIndex, queries: np.ndarray) -> list[list[str]]:
    return [[hit.id for hit in hits] for hits in index.search(queries, 10)]


def test_ondisk_ivf_from_ray_equals_one_process_index(ray_cluster, tiny_embeddings, tmp_path):
    one = tmp_path / "one-process"
    merged = tmp_path / "merged"
    embedkit("index", "build", "--embeddings", str(tiny_embeddings), "--spec", SPEC, "--out", str(one))
    line = embedkit("index", "build", "--embeddings", str(tiny_embeddings), "--spec", SPEC, "--out", str(merged),
                    "--on-disk", "--ray", ray_cluster, "--json").strip().splitlines()[-1]
    assert json.loads(line)["count"] == 3000  # stdout stays one JSON line (FAISS's messages go to stderr)
    lists = list(merged.glob("lists-*.ivfdata"))
    assert len(lists) == 1 and not list(tmp_path.glob(".merged.build-*"))  # shards cleaned up

    ids, vectors = EmbeddingsFolder.open(tiny_embeddings).load()
    reference, ondisk = FaissIndex.load(one), FaissIndex.load(merged, mmap=True)
    assert ondisk.info()["build"]["ondisk"]["shards"] > 1  # really filled in several tasks, then merged
    assert ondisk.ids() == ids  # string ids in input order
    queries = vectors[::15]
    for nprobe in (1, 8):
        reference.set_search_params(nprobe=nprobe)
        ondisk.set_search_params(nprobe=nprobe)
        assert top10(ondisk, queries) == top10(reference, queries)

    # the CLI opens it with the lists memory-mapped and encodes the query with the recorded model
    query = ["gene protein cell"]
    hits = [json.loads(embedkit("index", "search", str(path), "--query", *query, "--mmap", "--json"))["hits"]
            for path in (merged, one)]
    assert [h["id"] for h in hits[0]] == [h["id"] for h in hits[1]] and len(hits[0]) == 10


def test_ondisk_without_ray_and_texts_from_the_corpus(tiny_embeddings, tmp_path):
    corpus = tiny_embeddings.parent / "corpus.txt"
    out = tmp_path / "idx"
    embedkit("index", "build", "--embeddings", str(tiny_embeddings), "--corpus", str(corpus), "--spec", "IVF16,SQ8",
             "--out", str(out), "--on-disk")
    index = FaissIndex.load(out)
    lines = corpus.read_text(encoding="utf-8").splitlines()
    hit = index.search(EmbeddingsFolder.open(tiny_embeddings).load()[1][5:6], 1)[0][0]
    assert hit.id == "5" and hit.text == lines[5]
    # a rebuild over it replaces the lists file too
    embedkit("index", "build", "--embeddings", str(tiny_embeddings), "--spec", "IVF16,SQ8", "--out", str(out),
             "--on-disk", "--force", "--no-bm25")
    assert len(list(out.glob("lists-*.ivfdata"))) == 1
    assert len(FaissIndex.load(out).search(np.ones((1, index.dim), dtype=np.float32), 3)[0]) == 3


# ----------------------------------------------------------------- the lists file as part of the index folder

def test_lists_file_is_a_file_of_the_generation(tiny_embeddings, tmp_path):
    """The merged lists file is named, sized and checksummed by the manifest: verify covers it, the folder
    can move, a save that keeps the vectors keeps it, changes are refused, and damage is caught."""
    from embedkit.errors import IndexError_
    from embedkit.index import IndexFolder
    from embedkit.index.from_embeddings import build_index_folder
    from embedkit.index.storage import read_manifest

    built = tmp_path / "built"
    build_index_folder(tiny_embeddings, built, spec="IVF16,SQ8", ondisk=True, show_progress=False)
    meta = read_manifest(built)
    lists = meta["roles"]["lists"]
    assert lists.startswith("lists-") and meta["files"][lists]["bytes"] == (built / lists).stat().st_size > 0
    assert IndexFolder.verify(built) == []
    with pytest.raises(IndexError_, match="already exists"):
        build_index_folder(tiny_embeddings, built, spec="IVF16,SQ8", ondisk=True, show_progress=False)

    moved = tmp_path / "moved"
    built.rename(moved)  # FAISS recorded the old absolute path; the load maps the manifest's file instead
    queries = EmbeddingsFolder.open(tiny_embeddings).load()[1][:20]
    index = FaissIndex.load(moved)
    before = top10(index, queries)

    index.set_search_params(nprobe=4)
    index.save(moved)  # a new generation that keeps the same lists file
    meta2 = read_manifest(moved)
    assert meta2["generation"] != meta["generation"] and meta2["roles"]["lists"] == lists
    assert sorted(p.name for p in moved.glob("lists-*")) == [lists] and IndexFolder.verify(moved) == []
    again = FaissIndex.load(moved)
    assert again.search_params() == {"nprobe": 4}
    again.set_search_params(**index.search_params())
    assert top10(again, queries) == top10(index, queries)
    index.set_search_params(nprobe=meta["search_params"]["nprobe"])
    assert top10(index, queries) == before

    with pytest.raises(IndexError_, match="on disk"):
        again.add(["new"], queries[:1])
    with pytest.raises(IndexError_, match="saved only there"):
        again.save(tmp_path / "elsewhere")
    corpus = tiny_embeddings.parent / "corpus.txt"  # refused in one line before anything is encoded
    done = subprocess.run([sys.executable, "-m", "embedkit.cli.main", "index", "add", str(moved), "--corpus",
                           str(corpus)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "on disk" in done.stderr
    assert "%|" not in done.stderr  # no progress bar: nothing was encoded

    # damage: an overwritten byte is found by verify; a truncated file is refused by a plain load
    with open(moved / lists, "r+b") as f:
        f.seek(10)
        byte = f.read(1)
        f.seek(10)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert any("checksum mismatch" in p for p in IndexFolder.verify(moved))
    with open(moved / lists, "r+b") as f:
        f.truncate(100)
    with pytest.raises(IndexError_, match="truncated"):
        FaissIndex.load(moved)


def test_ondisk_build_waits_for_the_writer_lock(tiny_embeddings, tmp_path):
    """The build saves under the folder's writer lock: another writer holding it makes it give up in one line."""
    import multiprocessing as mp

    from embedkit.index.lock import IndexLockedError, writer_lock
    from embedkit.index.from_embeddings import build_index_folder

    out = tmp_path / "idx"
    ready, release = mp.Event(), mp.Event()
    holder = mp.get_context("fork").Process(target=_hold_lock, args=(out, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(IndexLockedError, match="another writer holds the index"):
            build_index_folder(tiny_embeddings, out, spec="IVF16,SQ8", ondisk=True, wait=0.2, show_progress=False)
        assert not list(tmp_path.glob(".idx.build-*"))  # the work folder is gone, and nothing was saved
        assert not (out / "meta.json").exists()
    finally:
        release.set()
        holder.join(30)
    with writer_lock(out, 0):  # free again
        pass
    build_index_folder(tiny_embeddings, out, spec="IVF16,SQ8", ondisk=True, wait=5, show_progress=False)
    assert FaissIndex.load(out).info()["count"] == 3000


def _hold_lock(out, ready, release) -> None:
    from embedkit.index.lock import writer_lock

    with writer_lock(out, 0):
        ready.set()
        release.wait(60)
