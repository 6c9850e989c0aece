"""Index folders from an embeddings folder (the Parquet shards that ``embedkit encode --ray`` writes).

Two ways, one result (an embedkit index folder: string ids, texts when a corpus is given, the model
recorded so ``index search`` encodes queries with it, saved as one generation under the writer lock):

- in memory: the index is built as from any precomputed vectors
  (:func:`embedkit.index.build_from_vectors`), reading the shards a slice at a time;
- on disk (``ondisk=True``, an IVF spec): train on a sample, fill a copy of the trained index per group
  of shards (in Ray tasks across the cluster when ``use_ray``, else one after the other here), and merge
  their inverted lists into one file (:mod:`embedkit.index.ondisk`) that the save moves into the folder.
  The vectors are never all in memory, not even the merged index's: a load maps the lists file.

Labels are row numbers of the embeddings folder, so the merged index holds the same vectors under the
same ids, in the same order within each list, as an index built in one process from those vectors.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from embedkit.distributed.output import EmbeddingsFolder, read_part_file
from embedkit.errors import DataError, IndexError_
from embedkit.index import ondisk
from embedkit.index.lock import DEFAULT_WAIT, writer_lock
from embedkit.index.storage import MANIFEST, check_writable_target

SHARDS_PER_CPU = 4  # shard groups per CPU of the cluster: enough for balance, few files to merge


def build_index_folder(embeddings: str | os.PathLike, out: str | os.PathLike, *, spec: str = "Flat",
                       metric: str = "cosine", corpus: str | os.PathLike | None = None, bm25: bool = True,
                       ondisk: bool = False, use_ray: bool = False, address: str | None = None,
                       force: bool = False, wait: float | None = DEFAULT_WAIT, show_progress: bool = True):
    """Build and save an index folder at ``out`` from the embeddings folder ``embeddings``; returns the
    :class:`embedkit.index.FaissIndex`. ``corpus`` (the documents that were encoded) gives the index its
    texts and a BM25 side; its ids must be those of the embeddings. An index already at ``out`` is
    replaced only with ``force``; ``wait``: seconds to wait for another writer of ``out``."""
    from embedkit.index import BM25Index, IndexFolder, build_from_vectors

    out = Path(out)
    _check_target(out, force)  # before the slow part; again under the lock
    folder = EmbeddingsFolder.open(embeddings)
    ids = folder.ids()
    texts, titles = _texts_for(ids, corpus) if corpus is not None else (None, None)
    model = folder.model
    identity = folder.manifest["identity"]
    build = {"document_prompt": identity.get("prompt"), "max_seq_length": identity.get("max_seq_length"),
             "embeddings": str(folder.path.resolve())}
    work = out.parent / f".{out.name}.build-{uuid.uuid4().hex[:8]}"  # beside the index: its lists file moves in
    try:
        if ondisk:
            work.mkdir(parents=True)
            index = _merged_on_disk(folder, ids, texts, titles, spec, metric, use_ray, address, work)
        else:
            index = build_from_vectors(ids, folder.vectors(), spec, metric, texts=texts, titles=titles,
                                       model_name=model.get("name"), model_fingerprint=model.get("fingerprint"),
                                       model_source=model.get("source"), show_progress=show_progress)
        index.build_params.update(build)
        side = None
        if corpus is not None and bm25:
            from embedkit.data import iter_documents

            side = BM25Index.from_documents(iter_documents(corpus))
        with writer_lock(out, wait):
            _check_target(out, force)
            IndexFolder(index, side).save(out, wait=wait)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return index


def _check_target(out: Path, force: bool) -> None:
    check_writable_target(out)  # a file, or a folder holding something else
    if (out / MANIFEST).exists() and not force:
        raise IndexError_(f"{out}: an index already exists there; pass --force (force=True) to replace it")


def _texts_for(ids: list[str], corpus) -> tuple[list[str], list[str]]:
    """Each id's text and title from the corpus; an id the corpus lacks is an error."""
    from embedkit.data import iter_documents

    docs = {d.id: d for d in iter_documents(corpus)}
    missing = [i for i in ids if i not in docs]
    if missing:
        raise DataError(f"{len(missing)} embedding ids are not in the corpus (first: {missing[0]!r}); pass the "
                        "corpus that was encoded", path=corpus)
    return [docs[i].text for i in ids], [docs[i].title for i in ids]


def _shard_groups(parts: int, cpus: int) -> list[range]:
    groups = max(1, min(parts, SHARDS_PER_CPU * cpus))
    bounds = np.linspace(0, parts, groups + 1).astype(int)
    return [range(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def _train(_, folder_path: str, rows: np.ndarray, spec: str, metric: str) -> np.ndarray:
    """The trained, empty index (serialised) from the sampled rows (runs in a Ray task or here)."""
    folder = EmbeddingsFolder.open(folder_path)
    return ondisk.train(folder.dim, spec, metric, folder.vectors()[rows])


def _fill(trained: np.ndarray, folder_path: str, parts: list[int], shard: str, metric: str) -> int:
    """One shard: the given parts added to a copy of the trained index (runs in a Ray task or here)."""
    folder = EmbeddingsFolder.open(folder_path)
    manifest_parts = folder.manifest["parts"]

    def blocks():
        for i in parts:
            _, vectors = read_part_file(folder.path / manifest_parts[i]["file"], folder.dim)
            yield manifest_parts[i]["start"], vectors

    return ondisk.fill_shard(trained, blocks(), shard, metric)


def _merged_on_disk(folder: EmbeddingsFolder, ids, texts, titles, spec: str, metric: str, use_ray: bool,
                    address: str | None, work: Path):
    from tqdm.auto import tqdm

    from embedkit.index import FaissIndex

    rows = ondisk.sample_rows(folder.count, folder.dim, spec, metric)
    parts, path = len(folder.manifest["parts"]), str(folder.path)
    if use_ray:
        from embedkit.distributed.cluster import connected
        from embedkit.distributed.tasks import cluster_cpus, map_tasks

        with connected(address):
            cpus, node_cpus = cluster_cpus()
            # k-means uses every CPU of its node; the sample is read there, never held by this process
            trained = map_tasks(_train, [(path, rows, spec, metric)], num_cpus=node_cpus)[0]
            groups = _shard_groups(parts, cpus)
            shards = [str(work / f"shard-{n:05d}.index") for n in range(len(groups))]
            map_tasks(_fill, [(path, list(g), s, metric) for g, s in zip(groups, shards)], shared=trained,
                      desc="fill IVF shards on Ray", total=folder.count)
    else:
        trained = _train(None, path, rows, spec, metric)
        groups = _shard_groups(parts, 1)
        shards = [str(work / f"shard-{n:05d}.index") for n in range(len(groups))]
        with tqdm(total=folder.count, desc="fill IVF shards", unit="vec") as bar:
            for group, shard in zip(groups, shards):
                bar.update(_fill(trained, path, list(group), shard, metric))
    lists = work / "lists.ivfdata"
    merged = ondisk.merge(trained, shards, lists)
    model = folder.model
    index = FaissIndex.from_faiss(merged, ids, texts, titles, spec, metric, model.get("name"),
                                  model.get("fingerprint"), model.get("source"))
    index.build_params["ondisk"] = {"bytes": lists.stat().st_size, "shards": len(shards),
                                    "trained_on": int(len(rows))}
    return index
