"""Index folders from the cluster's output: an IVF-PQ index built with shards filled in Ray tasks and
merged on disk searches exactly like the index built in one process from the same vectors."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

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
