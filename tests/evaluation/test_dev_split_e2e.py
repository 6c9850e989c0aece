"""SciFact's derived dev split: what recipes select on (170 train queries), and train-fit, what they then
train on; and ``embedkit eval retrieval --split dev`` scoring it."""
from __future__ import annotations

import hashlib
import json

import pytest

from embedkit.data import load_beir


@pytest.mark.e2e
def test_dev_and_train_fit_partition_train_by_the_documented_hash(shared_data):
    splits = {name: load_beir(shared_data / "scifact", name) for name in ("train", "dev", "train-fit")}
    dev, fit, train = splits["dev"], splits["train-fit"], splits["train"]
    assert len(dev.queries) == 170 and sum(len(d) for d in dev.qrels.values()) == 180
    assert len(fit.queries) == 639 and sum(len(d) for d in fit.qrels.values()) == 739
    assert not set(dev.queries) & set(fit.queries) and set(dev.queries) | set(fit.queries) == set(train.queries)
    rule = {q for q in train.queries if int(hashlib.sha256(f"scifact-dev:{q}".encode()).hexdigest(), 16) % 5 == 0}
    assert rule == set(dev.queries)
    assert not set(dev.queries) & set(load_beir(shared_data / "scifact", "test").queries)


@pytest.mark.e2e
def test_eval_retrieval_on_the_dev_split(shared_data, tmp_path, capsys):
    """The CLI on a copy of SciFact with the dev queries' judged abstracts and 100 others (for time)."""
    from embedkit.cli.main import main

    source, target = shared_data / "scifact", tmp_path / "scifact"
    (target / "qrels").mkdir(parents=True)
    qrels = (source / "qrels" / "dev.tsv").read_text(encoding="utf-8")
    (target / "qrels" / "dev.tsv").write_text(qrels, encoding="utf-8")
    judged = {line.split("\t")[1] for line in qrels.splitlines()[1:]}
    lines = (source / "corpus.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    others = [line for line in lines if json.loads(line)["_id"] not in judged][:100]
    (target / "corpus.jsonl").write_text("".join([line for line in lines if json.loads(line)["_id"] in judged] + others),
                                         encoding="utf-8")
    (target / "queries.jsonl").write_text((source / "queries.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["eval", "retrieval", "--data", str(target), "--split", "dev", "--max-seq-length", "128"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n_queries"] == 170 and 50 < result["ndcg@10"] <= 100
