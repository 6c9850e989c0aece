"""The datasets ``embedkit data get`` fetches: where each comes from on the Hugging Face hub, how it is
turned into the layout embedkit's loaders read, and what a correct copy looks like.

Every dataset is a :class:`DatasetSpec`: a folder under ``EMBEDKIT_DATA``, a ``build`` function that
downloads through a :class:`~embedkit.data.download.Hub` and writes the files, and the :class:`Part`
checks a finished folder must pass: row counts as the loaders read them, and checksums. A pinned
checksum is the one of the copy every figure in embedkit's documents was measured on (``../shared/data``);
``None`` marks data with no reference copy (SICK, STS12-16): their rows are checked and their checksums
recorded in the folder's README, not compared.

Checksums are ``sha256`` of a file's bytes where the conversion reproduces the reference file exactly,
and ``records`` (:func:`embedkit.data.records_checksum` of the data as loaded, the revision evaluation
results record) where the hub's copy cannot give the same bytes: the hub's STS-B has no trailing source
columns and writes scores in one format, so only what the loader reads can be compared.

The conversions are tested on stand-ins built from the reference copy in the hub's schemas; the hub itself
was never reachable where embedkit is developed, so a schema the hub changes (a column renamed, rows
reordered) shows up as a download that does not verify, and nothing is written.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from embedkit.data.checksum import sha256_file
from embedkit.errors import DataError

if TYPE_CHECKING:
    from embedkit.data.download import Hub

SIMCSE_REPO = "princeton-nlp/datasets-for-simcse"  # SimCSE's training files and SentEval's data bundle
SENTEVAL_TAR = "senteval.tar"
STSB_REPO = "mteb/stsbenchmark-sts"
SCIFACT_REPO, SCIFACT_QRELS_REPO = "BeIR/scifact", "BeIR/scifact-qrels"
WIKI_FILE, WIKI_PREFIX_LINES = "wiki1m_for_simcse.txt", 11914
SCIFACT_DEV_SALT, SCIFACT_DEV_MODULUS = "scifact-dev:", 5


@dataclass(frozen=True)
class Part:
    """One check of a dataset folder: ``measure(folder) -> (rows, checksum)`` must give ``rows`` and,
    when pinned, ``checksum`` (``kind`` says which checksum: ``sha256`` or ``records``)."""

    name: str
    rows: int
    measure: Callable[[Path], tuple[int, str]]
    kind: str = "sha256"
    checksum: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str  # relative to EMBEDKIT_DATA
    title: str
    source: str  # where on the hub, in words (the README adds revisions)
    origin: str  # the upstream release
    license: str
    layout: str  # the files a user who fetches them by hand puts in the folder
    build: Callable[["Hub", Path], None]
    parts: tuple[Part, ...]
    notes: str = ""  # how files were derived, for the README


# ----------------------------------------------------------------------------------------- measures


def _lines(relative: str) -> Callable[[Path], tuple[int, str]]:
    """Non-blank lines and the bytes' sha256 of a text file."""

    def measure(folder: Path) -> tuple[int, str]:
        path = _existing(folder, relative)
        with path.open("rb") as f:
            rows = sum(1 for line in f if line.strip())
        return rows, sha256_file(path)

    return measure


def _triplets(relative: str) -> Callable[[Path], tuple[int, str]]:
    def measure(folder: Path) -> tuple[int, str]:
        from embedkit.data.pairs import load_triplets

        path = _existing(folder, relative)
        return len(load_triplets(path)), sha256_file(path)

    return measure


def _sts(split: str) -> Callable[[Path], tuple[int, str]]:
    def measure(folder: Path) -> tuple[int, str]:
        from embedkit.data.checksum import records_checksum
        from embedkit.data.sts import load_sts

        dataset = load_sts(folder.resolve(), split=split)
        return len(dataset.pairs), records_checksum(dataset)

    return measure


def _senteval_subset(name: str) -> Callable[[Path], tuple[int, str]]:
    def measure(folder: Path) -> tuple[int, str]:
        from embedkit.data.sts import SENTEVAL_GOLD, SENTEVAL_INPUT, load_senteval_folder

        subsets = load_senteval_folder(folder.resolve()).subsets
        if name not in subsets:
            raise DataError(f"no {SENTEVAL_INPUT.format(name)} / {SENTEVAL_GOLD.format(name)}", path=folder)
        pairs = subsets[name]
        h = hashlib.sha256("".join(f"{p.sentence1}\t{p.sentence2}\t{p.score!r}\n" for p in pairs).encode())
        return len(pairs), h.hexdigest()

    return measure


def _corpus(folder: Path) -> tuple[int, str]:
    from embedkit.data.beir import CORPUS_FILE, count_documents

    path = _existing(folder, CORPUS_FILE)
    return count_documents(path), sha256_file(path)


def _qrels(split: str) -> Callable[[Path], tuple[int, str]]:
    """Judged pairs of a split, read by the BEIR loader (so every id is checked against corpus and queries)."""

    def measure(folder: Path) -> tuple[int, str]:
        from embedkit.data.beir import load_beir

        dataset = load_beir(folder.resolve(), split=split)
        return sum(len(docs) for docs in dataset.qrels.values()), sha256_file(folder / "qrels" / f"{split}.tsv")

    return measure


def _existing(folder: Path, relative: str) -> Path:
    path = folder / relative
    if not path.is_file():
        raise DataError(f"missing {relative}", path=folder)
    return path


# ------------------------------------------------------------------------------------------ writers


def write_lines(path: Path, lines: Iterable[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")


def _field(row: dict, names: tuple[str, ...], where: str, line: int) -> object:
    for name in names:
        if row.get(name) is not None:
            return row[name]
    raise DataError(f"missing field (the row has {sorted(row)})", path=where, line=line, field=names[0])


def _tsv_cell(value: object, where: str, line: int, field: str) -> str:
    text = str(value)
    if "\t" in text or "\n" in text or "\r" in text:
        raise DataError("a tab or line break inside a field cannot be written to a TSV file", path=where,
                        line=line, field=field)
    return text


def _id_order(value: str) -> tuple[int, int | str]:
    return (0, int(value)) if value.isdigit() else (1, value)


# ----------------------------------------------------------------------------------------- builders


def build_stsb(hub: "Hub", out: Path) -> None:
    """``mteb/stsbenchmark-sts`` (train, validation, test) -> ``sts-{train,dev,test}.csv`` in the original
    7-column layout: genre, filename, year, id, score, sentence1, sentence2 (tab-separated, no quoting)."""
    for split, stem in (("train", "train"), ("validation", "dev"), ("test", "test")):
        where = f"hub:{STSB_REPO} {split}"
        lines = []
        for n, row in enumerate(hub.rows(STSB_REPO, None, split), start=1):
            genre = _field(row, ("genre",), where, n)
            filename = row.get("dataset") or row.get("filename") or ""
            score = float(_field(row, ("score",), where, n))
            cells = [genre, filename, row.get("year") or "", row.get("sid") or row.get("id") or f"{n:04d}", repr(score),
                     _field(row, ("sentence1",), where, n), _field(row, ("sentence2",), where, n)]
            lines.append("\t".join(_tsv_cell(c, where, n, f"column {i + 1}") for i, c in enumerate(cells)))
        write_lines(out / f"sts-{stem}.csv", lines)


def scifact_dev_query(query_id: str) -> bool:
    """Whether a SciFact train query belongs to the derived ``dev`` split (a fifth, by a hash of its id)."""
    return int(hashlib.sha256((SCIFACT_DEV_SALT + query_id).encode()).hexdigest(), 16) % SCIFACT_DEV_MODULUS == 0


def build_scifact(hub: "Hub", out: Path) -> None:
    """``BeIR/scifact`` (corpus, queries) and ``BeIR/scifact-qrels`` (train, test) -> a BEIR folder in BEIR's
    own order (documents by id; the train split's queries, then the test split's, each by id; judgments by
    query id), plus the derived ``qrels/dev.tsv`` / ``qrels/train-fit.tsv`` (see :func:`scifact_dev_query`)."""
    where = f"hub:{SCIFACT_REPO}"
    docs = [(str(_field(r, ("_id",), where, n)), str(r.get("title") or ""), str(_field(r, ("text",), where, n)))
            for n, r in enumerate(hub.rows(SCIFACT_REPO, "corpus", "corpus"), start=1)]
    queries = {str(_field(r, ("_id",), where, n)): str(_field(r, ("text",), where, n))
               for n, r in enumerate(hub.rows(SCIFACT_REPO, "queries", "queries"), start=1)}
    qrels = {}
    for split in ("train", "test"):
        rows = []
        for n, r in enumerate(hub.rows(SCIFACT_QRELS_REPO, None, split), start=1):
            cells = [str(_field(r, (c,), f"hub:{SCIFACT_QRELS_REPO} {split}", n)) for c in ("query-id", "corpus-id")]
            score = float(_field(r, ("score",), f"hub:{SCIFACT_QRELS_REPO} {split}", n))
            rows.append((*cells, str(int(score)) if score.is_integer() else str(score)))
        qrels[split] = sorted(rows, key=lambda row: _id_order(row[0]))  # stable: a query's documents keep their order
    write_lines(out / "corpus.jsonl", (json.dumps({"_id": i, "title": t, "text": x}, ensure_ascii=False)
                                       for i, t, x in sorted(docs, key=lambda d: _id_order(d[0]))))
    order = []
    for split in ("train", "test"):
        order += sorted({q for q, _, _ in qrels[split]} - set(order), key=_id_order)
    order += sorted(set(queries) - set(order), key=_id_order)
    missing = [q for q in order if q not in queries]
    if missing:
        raise DataError(f"qrels name query {missing[0]!r}, which is not among the queries", path=where)
    write_lines(out / "queries.jsonl", (json.dumps({"_id": q, "text": queries[q]}, ensure_ascii=False) for q in order))
    header = "query-id\tcorpus-id\tscore"
    qrels["dev"] = [row for row in qrels["train"] if scifact_dev_query(row[0])]
    qrels["train-fit"] = [row for row in qrels["train"] if not scifact_dev_query(row[0])]
    for split, rows in qrels.items():
        write_lines(out / "qrels" / f"{split}.tsv", [header, *("\t".join(row) for row in rows)])


def build_wiki(hub: "Hub", out: Path) -> None:
    """The first 11,914 lines of SimCSE's ``wiki1m_for_simcse.txt`` (1M Wikipedia sentences): the file the
    recipes read, as the shared copy holds it. The whole file stays in the hub's cache (its path is in the
    folder's README) for longer runs."""
    source = hub.file(SIMCSE_REPO, WIKI_FILE)
    out.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as f, (out / f"wiki1m_for_simcse.first{WIKI_PREFIX_LINES}.txt").open("wb") as prefix:
        for _, line in zip(range(WIKI_PREFIX_LINES), f):
            prefix.write(line)


def extract_senteval(tar_path: Path, wanted: dict[str, str], out: Path) -> None:
    """Copy members of SentEval's data bundle to ``out``: ``wanted`` maps a path inside the bundle's
    ``downstream/`` folder (``STS/STS12-en-test/STS.input.MSRpar.txt``) to a path under ``out``. Members
    are matched by that ending, whatever folders the archive puts above ``downstream/``."""
    with tarfile.open(tar_path) as tar:
        members = {m.name.lstrip("./"): m for m in tar.getmembers() if m.isfile()}
        for inner, target in wanted.items():
            found = [m for name, m in members.items() if name == inner or name.endswith("/" + inner)]
            if not found:
                raise DataError(f"no {inner} in the archive", path=tar_path)
            destination = out / target
            destination.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(found[0]) as src, destination.open("wb") as dst:
                shutil.copyfileobj(src, dst)


def senteval_builder(wanted: dict[str, str], after: Callable[[Path], None] | None = None):
    def build(hub: "Hub", out: Path) -> None:
        extract_senteval(hub.file(SIMCSE_REPO, SENTEVAL_TAR), wanted, out)
        if after is not None:
            after(out)

    return build


def write_snli_triplets(out: Path) -> None:
    """SimCSE's supervised triplets from SNLI dev + test (``snli_devtest_triplets.csv``: sent0, sent1,
    hard_neg; CSV with CRLF line ends, as Python's csv module writes)."""
    from embedkit.data.snli import snli_triplets

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["sent0", "sent1", "hard_neg"])
    for split in ("dev", "test"):
        writer.writerows(snli_triplets(out / "snli_senteval", split))
    (out / "snli_devtest_triplets.csv").write_bytes(buffer.getvalue().encode("utf-8"))


# ---------------------------------------------------------------------------------------- catalogue

SENTEVAL_STS = {  # year -> scored pairs per subset, as SentEval counts them (unscored lines skipped)
    "STS12": {"MSRpar": 750, "MSRvid": 750, "SMTeuroparl": 459, "surprise.OnWN": 750, "surprise.SMTnews": 399},
    "STS13": {"FNWN": 189, "headlines": 750, "OnWN": 561},
    "STS14": {"deft-forum": 450, "deft-news": 300, "headlines": 750, "images": 750, "OnWN": 750, "tweet-news": 750},
    "STS15": {"answers-forums": 375, "answers-students": 750, "belief": 375, "headlines": 750, "images": 750},
    "STS16": {"answer-answer": 254, "headlines": 249, "plagiarism": 230, "postediting": 244, "question-question": 209},
}
SICK_FILES = {"SICK_train.txt": 4500, "SICK_trial.txt": 500, "SICK_test_annotated.txt": 4927}
SNLI_FILES = {f"{column}.{split}": rows for split, rows in (("dev", 9842), ("test", 9824))
              for column in ("s1", "s2", "labels")}
SNLI_SHA256 = {
    "s1.dev": "28a398b5478b10b4b851d4bb5b2e5767171519add6586015ed50b9436df11d00",
    "s2.dev": "a8c59709630b64ba103f7784c0cb7104a6baf23234562487264d9634714f5d2b",
    "labels.dev": "d164d72435c3289fe53cb01e983f7c06e104bf192c0cae9caf2e99bf2e15f974",
    "s1.test": "62cb8107dc3c56a4376e5e521842be24e0d61c92c346b94917da2bbf2a47d8be",
    "s2.test": "1174f3ad30a3c30fc0f9eeffc1b3b6a79e0514026c5a658968a8e2a324b311a1",
    "labels.test": "e25c363e5cc70d5494d6e6555d8053eced22dca836e0f03067530eaad3d4f5f5",
}
SENTEVAL_SOURCE = f"`{SENTEVAL_TAR}` (SentEval's data bundle as SimCSE ships it) from hub dataset `{SIMCSE_REPO}`"


def senteval_year_files(folder: str, subsets: Iterable[str]) -> dict[str, str]:
    """The bundle's input and gold files of a year folder's subsets -> their names in the dataset folder."""
    return {f"STS/{folder}/STS.{kind}.{name}.txt": f"STS.{kind}.{name}.txt" for name in subsets
            for kind in ("input", "gs")}


def _senteval_year(year: str) -> DatasetSpec:
    subsets = SENTEVAL_STS[year]
    folder = f"{year}-en-test"
    return DatasetSpec(
        name=year.lower(), folder=f"senteval/{folder}", title=f"SemEval {year} English STS test sets, SentEval layout",
        source=SENTEVAL_SOURCE, origin="SemEval STS shared tasks (Agirre et al., 2012-2016), as SentEval prepared them "
                                       "(Moses-tokenized, the files `embedkit eval sts` reads as one year folder)",
        license="per source; see the SemEval STS task pages", layout="STS.input.<subset>.txt + STS.gs.<subset>.txt",
        build=senteval_builder(senteval_year_files(folder, subsets)),
        parts=tuple(Part(f"STS.input.{name}.txt", rows, _senteval_subset(name)) for name, rows in subsets.items()))


CATALOG: dict[str, DatasetSpec] = {spec.name: spec for spec in [
    DatasetSpec(
        name="stsb", folder="stsb", title="STS Benchmark (STS-B), train / dev / test",
        source=f"hub dataset `{STSB_REPO}` (splits train, validation, test)",
        origin="Cer et al., SemEval-2017 Task 1, http://ixa2.si.ehu.eus/stswiki (Stsbenchmark.tar.gz)",
        license="scores CC BY-SA 4.0; sentences under their sources' terms",
        layout="sts-train.csv, sts-dev.csv, sts-test.csv (tab-separated: genre filename year id score s1 s2)",
        build=build_stsb,
        parts=(Part("sts-train.csv", 5749, _sts("train"), "records", "386124158cc12257"),
               Part("sts-dev.csv", 1500, _sts("dev"), "records", "8663567d2fb050d8"),
               Part("sts-test.csv", 1379, _sts("test"), "records", "9a676402e846af05"))),
    DatasetSpec(
        name="scifact", folder="scifact", title="SciFact in BEIR format, with the derived dev / train-fit split",
        source=f"hub datasets `{SCIFACT_REPO}` (configs corpus, queries) and `{SCIFACT_QRELS_REPO}` (train, test)",
        origin="Wadden et al., EMNLP 2020 (https://github.com/allenai/scifact); BEIR (Thakur et al., 2021)",
        license="CC BY-NC 2.0 (non-commercial)",
        layout="corpus.jsonl, queries.jsonl, qrels/{train,test,dev,train-fit}.tsv",
        build=build_scifact,
        parts=(Part("corpus.jsonl", 5183, _corpus, "sha256",
                    "ae39e2b331413acd6c58c262e3d2c1bf2b4afb5407ccfa6d06dd3f06e5da1f28"),
               Part("queries.jsonl", 1109, _lines("queries.jsonl"), "sha256",
                    "154a75771a103d599b0fdeda71cc75f7eef24a414de06967d72b5bbb07df8e8a"),
               Part("qrels/test.tsv", 339, _qrels("test"), "sha256",
                    "68c0ac63f1c24b9e8ce497649694f09b2d0850bab7ec2b103cc66996f5f8b3a3"),
               Part("qrels/train.tsv", 919, _qrels("train"), "sha256",
                    "ac0902d9b1cb717df182aaff1306175877fdb8f55bb5c3e8597ad694fc8e539f"),
               Part("qrels/dev.tsv", 180, _qrels("dev"), "sha256",
                    "8fbb251a6455d130a88edaf6ac500a6cd406e0c92412698ce90da6f2be3fc962"),
               Part("qrels/train-fit.tsv", 739, _qrels("train-fit"), "sha256",
                    "be248b369445e0410584a0413abcb414738e06fa4c2abbda8b922f158e07f0bf")),
        notes="`qrels/dev.tsv` holds the train queries whose id gives int(sha256('scifact-dev:' + id), 16) % 5 == 0 "
              "(select models on it); `qrels/train-fit.tsv` holds the others (train on it when selecting on dev). "
              "`train.tsv` = `train-fit.tsv` + `dev.tsv`; `test.tsv` is BEIR's test split (SciFact's original dev)."),
    DatasetSpec(
        name="sick", folder="sick", title="SICK relatedness (SemEval 2014 Task 1), SentEval layout",
        source=SENTEVAL_SOURCE, origin="Marelli et al., SemEval-2014 Task 1 (Moses-tokenized by SentEval)",
        license="CC BY-NC-SA 3.0", layout="SICK_train.txt, SICK_trial.txt, SICK_test_annotated.txt",
        build=senteval_builder({f"SICK/{name}": name for name in SICK_FILES}),
        parts=tuple(Part(name, rows, _sts({"SICK_train.txt": "train", "SICK_trial.txt": "trial"}.get(name, "test")),
                         "records") for name, rows in SICK_FILES.items())),
    *(_senteval_year(year) for year in SENTEVAL_STS),
    DatasetSpec(
        name="nli", folder="nli", title="SNLI dev + test in SentEval layout, and SimCSE triplets built from them",
        source=SENTEVAL_SOURCE, origin="SNLI 1.0 (Bowman et al., 2015), as SentEval prepared it (Moses-tokenized)",
        license="CC BY-SA 4.0", layout="snli_senteval/{s1,s2,labels}.{dev,test}, snli_devtest_triplets.csv",
        build=senteval_builder({f"SNLI/{name}": f"snli_senteval/{name}" for name in SNLI_FILES},
                                after=write_snli_triplets),
        parts=(*(Part(f"snli_senteval/{name}", rows, _lines(f"snli_senteval/{name}"), "sha256", SNLI_SHA256[name])
                 for name, rows in SNLI_FILES.items()),
               Part("snli_devtest_triplets.csv", 6339, _triplets("snli_devtest_triplets.csv"), "sha256",
                    "42ed2ced446752862c58ea6e0bb0f0fb56558fc0796c6189d3f7dca3054086a8")),
        notes="Triplets (SimCSE's recipe): within each split, pairs grouped by premise; each premise with an entailment "
              "and a contradiction gives one triplet per entailment hypothesis, its contradictions taken in turn."),
    DatasetSpec(
        name="wiki", folder="wiki", title="English Wikipedia sentences (SimCSE's wiki1m)",
        source=f"`{WIKI_FILE}` from hub dataset `{SIMCSE_REPO}`",
        origin="Gao et al., SimCSE (2021): 1M sentences sampled from English Wikipedia",
        license="Wikipedia text: CC BY-SA / GFDL",
        layout=f"wiki1m_for_simcse.first{WIKI_PREFIX_LINES}.txt (one sentence a line)",
        build=build_wiki,
        parts=(Part(f"wiki1m_for_simcse.first{WIKI_PREFIX_LINES}.txt", WIKI_PREFIX_LINES,
                    _lines(f"wiki1m_for_simcse.first{WIKI_PREFIX_LINES}.txt"), "sha256",
                    "423e56115d182ab21d4f413473f6f615888d140fec81f06a750297b5940aa190"),),
        notes=f"The first {WIKI_PREFIX_LINES:,} lines of the 1,000,000, the size the recipes' figures were measured "
              "at; the whole file stays in the hub cache (path above) for longer runs."),
]}
GROUPS = {"senteval": [year.lower() for year in SENTEVAL_STS], "all": list(CATALOG)}
