"""BEIR retrieval folders (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) and document streams.

Hand-written rather than ``beir.GenericDataLoader``: that loader is not a dependency, skips checks
(unknown qrels ids, duplicate ids, bad lines pass silently or raise a bare ``KeyError``), and cannot
stream a corpus for index building.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

from embedkit.data.hub import hub_column, load_hub_rows, local_path_or_hub_id
from embedkit.data.records import BEIRDataset, Document
from embedkit.data.textio import iter_lines, parse_json_object, text_field
from embedkit.errors import DataError
from embedkit.paths import resolve_data_path

CORPUS_FILE = "corpus.jsonl"
QUERIES_FILE = "queries.jsonl"
QRELS_DIR = "qrels"
QRELS_COLUMNS = ("query-id", "corpus-id", "score")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
PROGRESS_MIN_BYTES = 64 << 20  # SciFact's 8 MB loads in ~0.1 s; corpora past this take seconds to minutes

# Blank means ASCII whitespace only, as bytes.strip() sees it, so count_documents agrees with iter_documents.
ASCII_WHITESPACE = " \t\n\r\x0b\x0c"


def _record_id(obj: dict, where: Path | str, line: int) -> str:
    value = obj.get("_id")
    if value is None:
        raise DataError("missing field", path=where, line=line, field="_id")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"expected a string id, got {type(value).__name__}", path=where, line=line, field="_id")
    if str(value) == "":
        raise DataError("empty id", path=where, line=line, field="_id")
    return str(value)


def parse_document(obj: dict, where: Path | str, line: int) -> Document:
    """A corpus record ``{"_id", "title"?, "text"}``; a missing title is ""; other keys are ignored."""
    title = text_field(obj, "title", where, line, required=False) or ""
    return Document(_record_id(obj, where, line), title, text_field(obj, "text", where, line))


def _jsonl_objects(path: Path) -> Iterator[tuple[int, dict]]:
    for number, line in iter_lines(path):
        if line.strip(ASCII_WHITESPACE):
            yield number, parse_json_object(line, path, number)


def read_corpus(records: Iterable[tuple[int, dict]], where: Path | str) -> dict[str, Document]:
    corpus: dict[str, Document] = {}
    for line, obj in records:
        doc = parse_document(obj, where, line)
        if doc.id in corpus:
            raise DataError(f"duplicate document id {doc.id!r}", path=where, line=line, field="_id")
        corpus[doc.id] = doc
    if not corpus:
        raise DataError("no documents (empty corpus)", path=where)
    return corpus


def read_queries(records: Iterable[tuple[int, dict]], where: Path | str) -> dict[str, str]:
    queries: dict[str, str] = {}
    for line, obj in records:
        qid = _record_id(obj, where, line)
        if qid in queries:
            raise DataError(f"duplicate query id {qid!r}", path=where, line=line, field="_id")
        queries[qid] = text_field(obj, "text", where, line)
    if not queries:
        raise DataError("no queries (empty file)", path=where)
    return queries


def _integer(value: object) -> int | None:
    """An integer relevance grade from ``"2"``, ``2`` or an integral float (``"1.0"``, as pandas writes); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def _qrels_file_rows(path: Path) -> Iterator[tuple[int, str, str, str]]:
    """``(line, query_id, doc_id, score)`` per row; the first line is skipped when it is a header."""
    first = True
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) < 3:
            raise DataError(f"too few fields: expected {' '.join(QRELS_COLUMNS)} separated by tabs, found "
                            f"{len(fields)}", path=path, line=number, field=QRELS_COLUMNS[len(fields)])
        if first and _integer(fields[2]) is None:  # the header (query-id corpus-id score)
            first = False
            continue
        first = False
        yield number, fields[0], fields[1], fields[2]


def read_qrels(rows: Iterable[tuple[int, str, str, object]], where: Path | str, corpus: dict, queries: dict,
               corpus_name: str = CORPUS_FILE, queries_name: str = QUERIES_FILE) -> dict[str, dict[str, int]]:
    """Judgments by query; every id must exist in the corpus / queries. A repeated pair keeps its last grade."""
    qrels: dict[str, dict[str, int]] = {}
    for line, qid, did, raw_score in rows:
        if qid not in queries:
            raise DataError(f"query id {qid!r} is not in {queries_name}", path=where, line=line, field="query-id")
        if did not in corpus:
            raise DataError(f"document id {did!r} is not in {corpus_name}", path=where, line=line, field="corpus-id")
        score = _integer(raw_score)
        if score is None:
            raise DataError(f"score must be an integer, got {raw_score!r}", path=where, line=line, field="score")
        qrels.setdefault(qid, {})[did] = score
    if not qrels:
        raise DataError("no relevance judgments (empty qrels)", path=where)
    return qrels


def available_splits(folder: Path) -> list[str]:
    return sorted(p.stem for p in (folder / QRELS_DIR).glob("*.tsv"))


def _with_progress(records: Iterator, file: Path, show: bool | None) -> Iterable:
    if show is None:
        show = file.stat().st_size >= PROGRESS_MIN_BYTES
    if not show:
        return records
    from tqdm.auto import tqdm

    return tqdm(records, desc=f"load {file.name}", unit="doc")


def load_beir(path: str | os.PathLike, split: str = "test", show_progress: bool | None = None) -> BEIRDataset:
    """Load a BEIR folder for ``split``, checking every line; ``queries`` keeps only the judged ones.

    ``path`` is absolute, relative to the working directory, or relative to ``EMBEDKIT_DATA``
    (``"scifact"``). A string that exists nowhere locally and looks like a hub id (``owner/name``)
    is loaded with :func:`load_hub_beir`. A progress bar shows while reading the
    corpus when ``show_progress`` is True, or by default when ``corpus.jsonl`` is 64 MiB or more.
    """
    local = local_path_or_hub_id(path)
    if isinstance(local, str):
        return load_hub_beir(local, split)
    if not local.is_dir():
        raise DataError(f"expected a BEIR folder ({CORPUS_FILE}, {QUERIES_FILE}, {QRELS_DIR}/<split>.tsv), "
                        "got a file", path=local)
    qrels_rel = f"{QRELS_DIR}/{split}.tsv"
    missing = [name for name in (CORPUS_FILE, QUERIES_FILE, qrels_rel) if not (local / name).is_file()]
    if missing:
        splits = available_splits(local)
        hint = f" (qrels splits here: {', '.join(splits)})" if splits and qrels_rel in missing else ""
        raise DataError(f"not a BEIR folder for split {split!r}: missing {', '.join(missing)}{hint}", path=local)
    corpus_file = local / CORPUS_FILE
    corpus = read_corpus(_with_progress(_jsonl_objects(corpus_file), corpus_file, show_progress), corpus_file)
    all_queries = read_queries(_jsonl_objects(local / QUERIES_FILE), local / QUERIES_FILE)
    qrels = read_qrels(_qrels_file_rows(local / qrels_rel), local / qrels_rel, corpus, all_queries)
    queries = {qid: text for qid, text in all_queries.items() if qid in qrels}
    return BEIRDataset(corpus, queries, qrels, name=local.resolve().name, split=split, source=str(local))


def _document_source(path: str | os.PathLike) -> tuple[Path, bool]:
    """The file to stream and whether it is JSONL (else plain text, one document a line)."""
    local = resolve_data_path(path)
    if local.is_dir():
        corpus = local / CORPUS_FILE
        if not corpus.is_file():
            raise DataError(f"folder has no {CORPUS_FILE}; pass a BEIR folder, a corpus .jsonl file or a text file "
                            "with one document a line", path=local)
        return corpus, True
    return local, local.suffix.lower() in JSONL_SUFFIXES


def iter_documents(path: str | os.PathLike) -> Iterator[Document]:
    """Stream documents without loading the file: from a BEIR folder or a corpus ``.jsonl`` file
    (``_id``/``title``/``text``), or from a plain text file with one document a line.

    For plain text, blank lines are skipped and a document's id is its 0-based line number in the
    file (``"0"`` for the first line), so ids stay stable whatever lines are blank; title is "".
    Raises DataError at the first bad line, and at the end if there was no document at all.
    """
    file, is_jsonl = _document_source(path)
    count = 0
    if is_jsonl:
        for line, obj in _jsonl_objects(file):
            count += 1
            yield parse_document(obj, file, line)
    else:
        for line, text in iter_lines(file):
            if text.strip(ASCII_WHITESPACE):
                count += 1
                yield Document(str(line - 1), "", text)
    if count == 0:
        raise DataError("no documents (empty corpus)", path=file)


def count_documents(path: str | os.PathLike) -> int:
    """How many documents :func:`iter_documents` yields (non-blank lines), counted without parsing."""
    file, _ = _document_source(path)
    count = 0
    try:
        with file.open("rb") as f:
            for raw in f:
                count += bool(raw.strip())
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", path=file) from None
    return count


def load_hub_beir(name: str, split: str = "test") -> BEIRDataset:
    """A BEIR dataset in mteb's or BeIR's hub layout: configs ``corpus`` and ``queries``, and qrels
    (``query-id``, ``corpus-id``, ``score``) as split ``split`` of config ``default`` (mteb/*) or of
    the companion dataset ``<name>-qrels`` (BeIR/*). Checked like a local folder."""
    where = f"hub:{name}"
    corpus_rows = load_hub_rows(name, "corpus", "corpus")
    query_rows = load_hub_rows(name, "queries", "queries")
    try:
        qrels_rows, qrels_where = load_hub_rows(name, "default", split), f"{where} qrels"
    except DataError as first_error:
        try:
            qrels_rows, qrels_where = load_hub_rows(f"{name}-qrels", None, split), f"hub:{name}-qrels"
        except DataError:
            raise first_error from None
    corpus = read_corpus(enumerate(corpus_rows, start=1), f"{where} corpus")
    all_queries = read_queries(enumerate(query_rows, start=1), f"{where} queries")
    qrels_iter = ((line, str(hub_column(row, ("query-id",), qrels_where, line)),
                   str(hub_column(row, ("corpus-id",), qrels_where, line)),
                   hub_column(row, ("score",), qrels_where, line))
                  for line, row in enumerate(qrels_rows, start=1))
    qrels = read_qrels(qrels_iter, qrels_where, corpus, all_queries, corpus_name="the corpus",
                       queries_name="the queries")
    queries = {qid: text for qid, text in all_queries.items() if qid in qrels}
    return BEIRDataset(corpus, queries, qrels, name=name.split("/")[-1], split=split, source=where)
