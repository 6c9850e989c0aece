"""``embedkit data get``: conversion, verification and provenance on local stand-ins for the hub's data,
and the offline error for real (this machine has no hub).

The stand-ins are the hub's schemas filled from the shared copy (in-memory ``datasets.Dataset``s, a
``senteval.tar`` with SentEval's layout), so a conversion that writes anything but what the loaders read
as the reference copy fails the pinned checksums.
"""
from __future__ import annotations

import dataclasses
import io
import json
import random
import tarfile
from pathlib import Path

import pytest

from embedkit.cli.main import main
from embedkit.data import catalog
from embedkit.data.catalog import CATALOG, SENTEVAL_TAR, SIMCSE_REPO, WIKI_FILE, Part
from embedkit.data.download import Hub, get_dataset, names
from embedkit.errors import DataError


class LocalHub(Hub):
    """The hub, answered from local files and in-memory datasets; records what was asked for."""

    def __init__(self, files: dict[tuple[str, str], Path] | None = None,
                 rows: dict[tuple[str, str | None, str], list[dict]] | None = None):
        super().__init__()
        self.files, self.tables = files or {}, rows or {}

    def unreachable(self):
        return None

    def file(self, repo, filename):
        self.fetched.append({"repo": repo, "file": filename, "revision": "local", "sha256": "-", "cached_at": "-"})
        return self.files[(repo, filename)]

    def rows(self, repo, config, split):
        import datasets

        rows = self.tables[(repo, config, split)]
        self.fetched.append({"repo": repo, "config": config, "split": split, "rows": len(rows), "revision": "local"})
        return datasets.Dataset.from_list(rows)


class NoHub(Hub):
    def unreachable(self):
        raise AssertionError("a verified folder must not be downloaded again")


# ------------------------------------------------------------------------------ stand-ins from shared data


def stsb_rows(shared: Path, stem: str) -> list[dict]:
    """The rows of mteb/stsbenchmark-sts: no trailing source columns, scores as floats."""
    rows = []
    for line in (shared / "stsb" / f"sts-{stem}.csv").read_text(encoding="utf-8").splitlines():
        genre, filename, year, sid, score, s1, s2 = line.split("\t")[:7]
        rows.append({"split": stem, "genre": genre, "dataset": filename, "year": year, "sid": sid,
                     "score": float(score), "sentence1": s1, "sentence2": s2})
    return rows


def scifact_tables(shared: Path, shuffle: random.Random) -> dict:
    """BeIR/scifact and BeIR/scifact-qrels, rows shuffled: the hub's order is not the file's."""
    folder = shared / "scifact"
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    queries = [json.loads(line) for line in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    shuffle.shuffle(corpus)
    shuffle.shuffle(queries)
    tables = {(catalog.SCIFACT_REPO, "corpus", "corpus"): corpus, (catalog.SCIFACT_REPO, "queries", "queries"): queries}
    for split in ("train", "test"):
        lines = (folder / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]
        by_query: dict[str, list[dict]] = {}
        for q, d, s in (line.split("\t") for line in lines):
            by_query.setdefault(q, []).append({"query-id": int(q), "corpus-id": int(d), "score": int(s)})
        groups = list(by_query.values())
        shuffle.shuffle(groups)  # queries in any order; a query's documents keep theirs
        tables[(catalog.SCIFACT_QRELS_REPO, None, split)] = [row for group in groups for row in group]
    return tables


def senteval_tar(path: Path, members: dict[str, bytes], prefix: str = "SentEval/data/downstream/") -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


# -------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("name", ["stsb", "scifact", "nli", "wiki"])
def test_the_shared_copy_verifies_and_is_not_downloaded_again(name, shared_data):
    """The pinned rows and checksums are those of the reference copy; a verified folder is kept."""
    outcome = get_dataset(name, shared_data, hub=NoHub())
    assert not outcome.downloaded and outcome.facts
    assert all(f.part.checksum == f.checksum for f in outcome.facts)


def test_stsb_from_the_hub_schema_reads_as_the_reference_copy(shared_data, tmp_path):
    hub = LocalHub(rows={(catalog.STSB_REPO, None, split): stsb_rows(shared_data, stem)
                         for split, stem in (("train", "train"), ("validation", "dev"), ("test", "test"))})
    outcome = get_dataset("stsb", tmp_path, hub=hub)
    assert outcome.downloaded and [f.rows for f in outcome.facts] == [5749, 1500, 1379]
    assert all(f.checksum == f.part.checksum for f in outcome.facts)  # records: what the loader reads
    readme = (tmp_path / "stsb" / "README.md").read_text(encoding="utf-8")
    assert "mteb/stsbenchmark-sts" in readme and "| `sts-test.csv` | 1,379 | records `9a676402e846af05`" in readme


def test_scifact_in_beir_order_with_the_derived_dev_split(shared_data, tmp_path):
    hub = LocalHub(rows=scifact_tables(shared_data, random.Random(0)))
    outcome = get_dataset("scifact", tmp_path, hub=hub)
    assert {f.part.name: f.rows for f in outcome.facts} == {
        "corpus.jsonl": 5183, "queries.jsonl": 1109, "qrels/test.tsv": 339, "qrels/train.tsv": 919,
        "qrels/dev.tsv": 180, "qrels/train-fit.tsv": 739}
    for fact in outcome.facts:  # byte for byte the shared files, derived split included
        assert (tmp_path / "scifact" / fact.part.name).read_bytes() == (shared_data / "scifact" / fact.part.name).read_bytes()


def test_nli_and_wiki_from_simcse_files(shared_data, tmp_path):
    snli = shared_data / "nli" / "snli_senteval"
    tar = senteval_tar(tmp_path / SENTEVAL_TAR, {f"SNLI/{p.name}": p.read_bytes() for p in snli.iterdir()})
    wiki = tmp_path / WIKI_FILE  # the 1M-line file: the shared prefix and more
    wiki.write_bytes((shared_data / "wiki" / "wiki1m_for_simcse.first11914.txt").read_bytes() + b"more\nlines\n")
    hub = LocalHub(files={(SIMCSE_REPO, SENTEVAL_TAR): tar, (SIMCSE_REPO, WIKI_FILE): wiki})
    root = tmp_path / "data"
    for name in ("nli", "wiki"):
        assert get_dataset(name, root, hub=hub).downloaded
    assert (root / "nli" / "snli_devtest_triplets.csv").read_bytes() == \
        (shared_data / "nli" / "snli_devtest_triplets.csv").read_bytes()
    assert sorted(p.name for p in (root / "wiki").iterdir()) == ["README.md", "wiki1m_for_simcse.first11914.txt"]


STS12_SMALL = {"MSRpar": ["a b\tc d", "e f\tg h", "i j\tk l"], "MSRvid": ["m n\to p", "q r\ts t"]}


def _sts12_tar(tmp_path: Path, subsets: dict[str, list[str]] = STS12_SMALL) -> Path:
    members = {}
    for subset, lines in subsets.items():
        members[f"STS/STS12-en-test/STS.input.{subset}.txt"] = ("\n".join(lines) + "\n").encode()
        gold = ["4.2"] * len(lines)
        gold[-1] = ""  # unscored: SentEval skips it
        members[f"STS/STS12-en-test/STS.gs.{subset}.txt"] = ("\n".join(gold) + "\n").encode()
    members["STS/STS12-en-test/readme.txt"] = b"not copied"
    return senteval_tar(tmp_path / SENTEVAL_TAR, members, prefix="./")


def test_senteval_year_layout_is_what_eval_sts_reads(tmp_path, monkeypatch):
    small = dataclasses.replace(
        CATALOG["sts12"], build=catalog.senteval_builder(catalog.senteval_year_files("STS12-en-test", STS12_SMALL)),
        parts=tuple(Part(f"STS.input.{name}.txt", len(lines) - 1, catalog._senteval_subset(name))
                    for name, lines in STS12_SMALL.items()))
    monkeypatch.setitem(CATALOG, "sts12", small)
    hub = LocalHub(files={(SIMCSE_REPO, SENTEVAL_TAR): _sts12_tar(tmp_path)})
    outcome = get_dataset("sts12", tmp_path / "data", hub=hub)
    folder = tmp_path / "data" / "senteval" / "STS12-en-test"
    assert outcome.folder == folder and [f.rows for f in outcome.facts] == [2, 1]
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "STS.gs.MSRpar.txt", "STS.gs.MSRvid.txt",
                                                        "STS.input.MSRpar.txt", "STS.input.MSRvid.txt"]
    assert "no reference copy (recorded only)" in (folder / "README.md").read_text(encoding="utf-8")


def test_a_download_that_does_not_verify_writes_nothing(tmp_path):
    few = {name: STS12_SMALL["MSRpar"] for name in catalog.SENTEVAL_STS["STS12"]}  # 2 pairs each, not SemEval's
    hub = LocalHub(files={(SIMCSE_REPO, SENTEVAL_TAR): _sts12_tar(tmp_path, few)})
    with pytest.raises(DataError, match=r"does not verify, nothing was written: .*STS.input.MSRpar.txt: 2 rows, expected 750"):
        get_dataset("sts12", tmp_path / "data", hub=hub)
    assert list((tmp_path / "data" / "senteval").iterdir()) == []


def test_a_folder_that_does_not_verify_is_kept_unless_forced(shared_data, tmp_path):
    bad = tmp_path / "stsb"
    bad.mkdir()
    (bad / "sts-train.csv").write_text("main-news\tf\t2012\t1\t3.0\ta\tb\n", encoding="utf-8")
    hub = LocalHub(rows={(catalog.STSB_REPO, None, split): stsb_rows(shared_data, stem)
                         for split, stem in (("train", "train"), ("validation", "dev"), ("test", "test"))})
    with pytest.raises(DataError, match="exists but is not a verified copy .*--force"):
        get_dataset("stsb", tmp_path, hub=hub)
    assert get_dataset("stsb", tmp_path, hub=hub, force=True).downloaded
    assert len((bad / "sts-train.csv").read_text(encoding="utf-8").splitlines()) == 5749
    assert [p.name for p in tmp_path.iterdir()] == ["stsb"]  # no partial or old folder left behind


def test_names_expand_groups_once():
    assert names(["sts13", "senteval"]) == ["sts13", "sts12", "sts14", "sts15", "sts16"]
    assert names(["all"]) == list(CATALOG)
    with pytest.raises(DataError, match="unknown dataset 'stbs'; choose from stsb"):
        names(["stbs"])


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "http://127.0.0.1:9"}])
def test_offline_is_one_line_saying_where_to_put_the_files(env, tmp_path, monkeypatch, capsys):
    """For real: HF_HUB_OFFLINE, or a hub endpoint that refuses connections (nothing listens on port 9)."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert main(["data", "get", "scifact", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("embedkit: error: cannot download scifact: the Hugging Face hub is unreachable (")
    assert "\n" not in err and str(tmp_path / "scifact") in err and "corpus.jsonl, queries.jsonl" in err
    assert not (tmp_path / "scifact").exists()
