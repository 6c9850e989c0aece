"""Index folders from an embeddings folder (the output of ``embedkit encode --ray``).

Two ways, one result (an embedkit index folder: string ids, texts when a corpus is given, an atomic
manifest, the model recorded so ``index search`` can encode queries with it):

- in memory: the index is built as from any precomputed vectors
  (:func:`embedkit.index.build_from_vectors`), reading the shards a slice at a time;
- on disk (``ondisk=True``, an IVF spec): train on a sample, fill a copy of the trained index per group
  of shards (in Ray tasks across the cluster when ``use_ray``, else one after the other here), and merge
  their inverted lists into one file inside the folder (:mod:`embedkit.index.ondisk`). The vectors are
  never all in memory, not even the merged index's: ``index search`` maps the lists file.

Labels are row numbers of the embeddings folder, so the merged index holds the same vectors under the
same ids, in the same order within each list, as an index built in one process from those vectors.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from embedkit.distributed.output import EmbeddingsFolder
from embedkit.errors import DataError

SHARDS_PER_CPU = 4  # shard groups per CPU of the cluster: enough for balance, few files to merge


def build_index_folder(embeddings: str | os.PathLike, out: str | os.PathLike, *, spec: str = "Flat",
                       metric: str = "cosine", corpus: str | os.PathLike | None = None, bm25: bool = True,
                       ondisk: bool = False, use_ray: bool = False, address: str | None = None,
                       show_progress: bool = True):
    """Build and save an index folder at ``out`` from the embeddings folder ``embeddings``; returns the
    :class:`embedkit.index.FaissIndex`. ``corpus`` (the documents that were encoded) gives the index its
    texts and a BM25 side; its ids must be those of the embeddings."""
    from embedkit.index import FaissIndex, build_from_vectors

    folder = EmbeddingsFolder.open(embeddings)
    ids = folder.ids()
    texts, titles = _texts_for(ids, corpus) if corpus is not None else (None, None)
    model = folder.model
    identity = folder.manifest["identity"]
    build = {"document_prompt": identity.get("prompt"), "max_seq_length": identity.get("max_seq_length"),
             "embeddings": str(folder.path.resolve())}
    if ondisk:
        index = _build_ondisk(folder, ids, texts, titles, Path(out), spec, metric, use_ray, address, build)
    else:
        index = build_from_vectors(ids, folder.vectors(), spec, metric, texts=texts, titles=titles,
                                   model_name=model.get("name"), model_fingerprint=model.get("fingerprint"),
                                   model_source=model.get("source"), show_progress=show_progress)
        index.build_params.update(build)
        index.save(out)
    if corpus is not None and bm25:
        from embedkit.data import iter_documents
        from embedkit.index import BM25Index
        from embedkit.index.faiss_index import saved_documents_checksum

        BM25Index.from_documents(iter_documents(corpus)).save(out, paired_with=saved_documents_checksum(out))
    return FaissIndex.load(out) if ondisk else index


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


def _sample(folder: EmbeddingsFolder, rows: np.ndarray) -> np.ndarray:
    return folder.vectors()[rows]


def _fill(trained: np.ndarray, folder_path: str, parts: list[int], shard: str, metric: str) -> int:
    """One shard: the given parts added to a copy of the trained index (runs in a Ray task or here)."""
    from embedkit.distributed.output import read_part_file
    from embedkit.index import ondisk

    folder = EmbeddingsFolder.open(folder_path)
    manifest_parts = folder.manifest["parts"]

    def blocks():
        for i in parts:
            _, vectors = read_part_file(folder.path / manifest_parts[i]["file"], folder.dim)
            yield manifest_parts[i]["start"], vectors

    return ondisk.fill_shard(trained, blocks(), shard, metric)


def _build_ondisk(folder: EmbeddingsFolder, ids, texts, titles, out: Path, spec: str, metric: str,
                  use_ray: bool, address: str | None, build: dict):
    from embedkit.index import FaissIndex, ondisk
    from embedkit.index.faiss_index import MANIFEST
    from embedkit.index.storage import new_generation

    rows = ondisk.sample_rows(folder.count, folder.dim, spec, metric)
    work = out.parent / f".{out.name}.build-{uuid.uuid4().hex[:8]}"  # beside the index: same storage
    work.mkdir(parents=True)
    try:
        if use_ray:
            trained, shards = _train_and_fill_on_ray(folder, rows, spec, metric, work, address)
        else:
            trained = ondisk.train(folder.dim, spec, metric, _sample(folder, rows))
            shards = []
            for n, group in enumerate(_shard_groups(len(folder.manifest["parts"]), 1)):
                shards.append(str(work / f"shard-{n:05d}.index"))
                _fill(trained, str(folder.path), list(group), shards[-1], metric)
        lists = work / ondisk.lists_name(new_generation())
        merged = ondisk.merge(trained, shards, lists)
        final_lists = out.resolve() / lists.name
        ondisk.point_lists_to(merged, final_lists)  # where it will be once in the folder
        model = folder.model
        index = FaissIndex.from_faiss(merged, ids, texts, titles, spec, metric, model.get("name"),
                                      model.get("fingerprint"), model.get("source"))
        index.build_params.update(build, ondisk={"lists": lists.name, "bytes": lists.stat().st_size,
                                                 "shards": len(shards), "trained_on": int(len(rows))})
        if (out / MANIFEST).exists():  # a rebuild: the new lists file first, then the manifest switch
            os.replace(lists, final_lists)
            index.save(out)
        else:  # a new folder appears whole: saved beside, the lists file added, then renamed into place
            staging = work / "index"
            index.save(staging)
            os.replace(lists, staging / lists.name)
            if out.is_dir():
                if any(out.iterdir()):
                    raise DataError("not empty and not an index folder; choose another --out", path=out)
                out.rmdir()
            os.replace(staging, out)
        ondisk.remove_stale_lists(out, final_lists)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return index


def _train_and_fill_on_ray(folder: EmbeddingsFolder, rows: np.ndarray, spec: str, metric: str, work: Path,
                           address: str | None) -> tuple[np.ndarray, list[str]]:
    """Sample and train in Ray tasks (the driver holds neither), then one task per shard group."""
    from tqdm.auto import tqdm

    from embedkit.distributed.cluster import connected
    from embedkit.distributed.pipeline import _embedkit_cause
    from embedkit.index import ondisk

    with connected(address):
        import ray

        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        node_cpus = max(int(n["Resources"].get("CPU", 1)) for n in ray.nodes() if n.get("Alive"))
        try:
            sample = ray.remote(_sample_task).remote(str(folder.path), rows)
            train = ray.remote(ondisk.train).options(num_cpus=node_cpus)  # FAISS's k-means uses them all
            trained = ray.get(train.remote(folder.dim, spec, metric, sample))
            trained_ref = ray.put(trained)
            groups = _shard_groups(len(folder.manifest["parts"]), cpus)
            shards = [str(work / f"shard-{n:05d}.index") for n in range(len(groups))]
            pending = [ray.remote(_fill).remote(trained_ref, str(folder.path), list(g), s, metric)
                       for g, s in zip(groups, shards)]
            with tqdm(total=folder.count, desc="fill IVF shards on Ray", unit="vec") as bar:
                while pending:
                    done, pending = ray.wait(pending)
                    bar.update(sum(ray.get(done)))
        except Exception as exc:
            cause = _embedkit_cause(exc)
            if cause is not None:
                raise cause from None
            raise
    return trained, shards


def _sample_task(folder_path: str, rows: np.ndarray) -> np.ndarray:
    return _sample(EmbeddingsFolder.open(folder_path), rows)
