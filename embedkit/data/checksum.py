"""Content hashes of datasets, recorded with evaluation results as the dataset's revision.

A results cache keyed by dataset *name* serves stale scores after the data changes (mteb's cache
has this trap); keyed by these hashes it cannot.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from embedkit.data.records import BEIRDataset, STSDataset
from embedkit.errors import DataError
from embedkit.paths import resolve_data_path

_DOC_PREFIXES = ("readme", "license", "licence")
_DOC_SUFFIXES = (".md", ".pl")  # READMEs, and the correlation scripts SentEval/STS folders ship
_CHUNK = 1 << 20


def _is_data_file(path: Path, root: Path) -> bool:
    rel = path.relative_to(root)
    name = path.name.lower()
    return (path.is_file() and not any(part.startswith(".") for part in rel.parts)
            and not name.startswith(_DOC_PREFIXES) and not name.endswith(_DOC_SUFFIXES))


def dataset_files(path: str | os.PathLike, split: str | None = None) -> list[Path]:
    """The files a loader reads for ``path`` (and ``split``), sorted.

    A file is itself. A BEIR folder gives corpus, queries and ``qrels/<split>.tsv`` (every qrels
    file without a split). An STS-B folder with a split gives ``sts-<split>.csv``. Any other folder
    gives all its files, recursively, except hidden ones, READMEs, licences and ``.pl`` scripts.
    """
    from embedkit.data.beir import CORPUS_FILE, QRELS_DIR, QUERIES_FILE
    from embedkit.data.sts import STSB_SPLITS

    root = resolve_data_path(path)
    if root.is_file():
        return [root]
    if (root / CORPUS_FILE).is_file():
        qrels = [root / QRELS_DIR / f"{split}.tsv"] if split else sorted((root / QRELS_DIR).glob("*.tsv"))
        return [p for p in (root / CORPUS_FILE, root / QUERIES_FILE, *qrels) if p.is_file()]
    if split and (root / f"sts-{STSB_SPLITS.get(split.lower(), split)}.csv").is_file():
        return [root / f"sts-{STSB_SPLITS.get(split.lower(), split)}.csv"]
    return sorted(p for p in root.rglob("*") if _is_data_file(p, root))


def sha256_file(path: Path) -> str:
    """sha256 (64 hex digits) of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def data_checksum(path: str | os.PathLike, split: str | None = None) -> str:
    """sha256 (16 hex digits) over the names, sizes and bytes of :func:`dataset_files`."""
    files = dataset_files(path, split)
    if not files:
        raise DataError("no data files to checksum", path=path)
    root = resolve_data_path(path)
    base = root if root.is_dir() else root.parent
    h = hashlib.sha256()
    for file in files:
        h.update(f"{file.relative_to(base).as_posix()}\0{file.stat().st_size}\0".encode())
        with file.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()[:16]


def records_checksum(dataset: STSDataset | BEIRDataset) -> str:
    """sha256 (16 hex) over a loaded dataset's records: the revision for hub datasets, which have no local files."""
    h = hashlib.sha256()

    def add(value) -> None:
        h.update(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        h.update(b"\n")

    if isinstance(dataset, STSDataset):
        for name, pairs in (dataset.subsets or {"": dataset.pairs}).items():
            add(name)
            for p in pairs:
                add([p.sentence1, p.sentence2, p.score, p.genre])
    else:
        add(dataset.split)
        for doc in dataset.corpus.values():
            add([doc.id, doc.title, doc.text])
        for qid, text in dataset.queries.items():
            add([qid, text])
        for qid, docs in dataset.qrels.items():
            add([qid, sorted(docs.items())])
    return h.hexdigest()[:16]
