"""Every shipped recipe runs on the real default model for one optimisation step, so a recipe that cannot
run (a renamed key, a data path, a loss that no longer fits its data) fails CI.

Each recipe runs unchanged except for ``--set max_steps=1`` and a few size options, against a small copy of
the shared data (every 25th STS-B pair, 10 queries per SciFact split with their judged abstracts and 120
others, the first lines of the other files) made in a temporary folder set as EMBEDKIT_DATA, and as its
final run (``eval.final=true``) so that its test sets load and score too.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "training").glob("*.yaml"))
SMALL = {  # what keeps each method's one step and evaluation small (data sizes, samples, examples)
    "grace-pairs": ["params.eval_sts_pairs=8", "params.held_out_pairs=2", "params.held_out_every=1",
                    "params.extra_pairs.0.limit=16", "params.max_rationale_tokens=4", "params.group_size=2"],
    "rankgen-scifact": ["params.max_train_examples=8", "params.max_dev_examples=4", "params.max_held_out_examples=4",
                        "params.sampling.max_new_tokens=4"],
}


def _head(source: Path, target: Path, lines: int | None = None, every: int = 1) -> None:
    rows = source.read_text(encoding="utf-8").splitlines(keepends=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(rows[::every][:lines]), encoding="utf-8")


@pytest.fixture(scope="module")
def small_data(shared_data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("small-data")
    for split in ("train", "dev", "test"):
        _head(shared_data / "stsb" / f"sts-{split}.csv", root / "stsb" / f"sts-{split}.csv", every=25)
    _head(shared_data / "wiki" / "wiki1m_for_simcse.first11914.txt", root / "wiki" / "wiki1m_for_simcse.first11914.txt", 400)
    _head(shared_data / "nli" / "snli_devtest_triplets.csv", root / "nli" / "snli_devtest_triplets.csv", 200)
    for name in ("s1", "s2", "labels"):
        for split in ("dev", "test"):
            _head(shared_data / "nli" / "snli_senteval" / f"{name}.{split}", root / "nli" / "snli_senteval" / f"{name}.{split}", 300)
    source, target = shared_data / "scifact", root / "scifact"
    (target / "qrels").mkdir(parents=True)
    keep_queries, keep_docs, qrels = set(), set(), {}
    for split_file in sorted((source / "qrels").glob("*.tsv")):
        header, *rows = split_file.read_text(encoding="utf-8").splitlines()
        rows = [r.split("\t") for r in rows]
        chosen = list(dict.fromkeys(q for q, _, _ in rows))[:10]
        keep_queries |= set(chosen)
        qrels[split_file.name] = (header, [r for r in rows if r[0] in chosen])
        keep_docs |= {d for q, d, _ in rows if q in chosen}
    corpus = (source / "corpus.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    others = [line for line in corpus if json.loads(line)["_id"] not in keep_docs][:120]
    (target / "corpus.jsonl").write_text("".join(
        [line for line in corpus if json.loads(line)["_id"] in keep_docs] + others), encoding="utf-8")
    (target / "queries.jsonl").write_text((source / "queries.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    for name, (header, rows) in qrels.items():
        (target / "qrels" / name).write_text("\n".join([header, *("\t".join(r) for r in rows)]) + "\n",
                                             encoding="utf-8")
    return root


@pytest.mark.e2e
@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_shipped_recipe_takes_a_step_on_the_default_model(path, small_data, tmp_path, monkeypatch):
    from embedkit.cli.main import main

    monkeypatch.setenv("EMBEDKIT_DATA", str(small_data))
    out = tmp_path / "out"
    overrides = ["max_steps=1", "batch_size=4", "save_steps=1000", "eval.before=false", "eval.final=true",
                 *SMALL.get(path.stem, [])]
    args = ["train", str(path), "--out", str(out)] + [w for item in overrides for w in ("--set", item)]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    record = json.loads((out / "record.json").read_text(encoding="utf-8"))
    assert results["steps"] == 1 and record["metrics"]["steps"] == 1
    assert record["metrics"]["after"] and record["recipe"]["name"] == path.stem
