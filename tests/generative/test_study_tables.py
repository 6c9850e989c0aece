"""The held-out suffix identification table places a slow scorer's slices (study.py --part K/N) at their
prefixes, compares scorers on the prefixes all of them were measured on, and refuses overlaps."""
from pathlib import Path

import pytest

from embedkit.records import make_record, write_record

from helpers import load_script


def _tables():
    return load_script("results/generative/tables.py")


def _write(folder: Path, name: str, part: list[int], hits: dict) -> None:
    metrics = {spec: {"n_prefixes": len(h["hits_all"]), "accuracy_all": 0.0, "candidates_all": 4} for spec, h in hits.items()}
    write_record(folder / f"{name}.json", make_record("rankgen-suffix-id", metrics, "test", 0.0,
                                                      details={"part": part, "per_prefix": hits}))


def test_parts_are_placed_at_their_prefixes(tmp_path):
    _write(tmp_path, "rankgen-suffix-id-held-out-a", [1, 1], {"default": {"hits_all": [1, 0, 1, 0, 1]}})
    _write(tmp_path, "rankgen-suffix-id-held-out-lm-2", [2, 2], {"lm:default": {"hits_all": [0, 0, 1]}})
    total, hits = _tables().held_out_hits(tmp_path)
    assert total == 5
    assert hits["lm:default"]["hits_all"] == {2: 0, 3: 0, 4: 1}
    assert hits["default"]["hits_all"] == {0: 1, 1: 0, 2: 1, 3: 0, 4: 1}


def test_overlapping_parts_are_refused(tmp_path):
    _write(tmp_path, "rankgen-suffix-id-held-out-a", [1, 1], {"default": {"hits_all": [1, 0]}})
    _write(tmp_path, "rankgen-suffix-id-held-out-b", [1, 2], {"default": {"hits_all": [0]}})
    with pytest.raises(ValueError, match="overlaps"):
        _tables().held_out_hits(tmp_path)


def test_a_part_of_the_wrong_size_is_refused(tmp_path):
    _write(tmp_path, "rankgen-suffix-id-held-out-a", [1, 1], {"default": {"hits_all": [1, 0, 1, 1]}})
    _write(tmp_path, "rankgen-suffix-id-held-out-b", [1, 2], {"lm:default": {"hits_all": [0]}})
    with pytest.raises(ValueError, match="part 1/2 of 4"):
        _tables().held_out_hits(tmp_path)


def _dev_run(folder: Path, name: str, after: float, lr: float) -> None:
    metrics = {"before": {"suffix-id-dev": {"accuracy_all": 10.0}}, "after": {"suffix-id-dev": {"accuracy_all": after}}}
    recipe = {"learning_rate": lr, "params": {"negatives": {"in_document": 3, "lm_generated": 0}}}
    write_record(folder / "rankgen-runs" / f"{name}.json", make_record("rankgen", metrics, "test", 0.0, recipe=recipe))


def test_the_best_dev_run_is_the_one_with_the_highest_dev_accuracy_after_training(tmp_path, monkeypatch):
    tables = _tables()
    monkeypatch.setattr(tables, "HERE", tmp_path)
    _dev_run(tmp_path, "dev-a", 30.0, 5e-5)
    _dev_run(tmp_path, "dev-b", 34.0, 1e-4)
    _dev_run(tmp_path, "dev-c", 31.0, 2e-4)
    assert tables.best_dev_run("rankgen")["recipe"]["learning_rate"] == 1e-4


def test_the_rankgen_target_is_judged_on_the_mean_of_three_seeds(tmp_path, monkeypatch):
    tables = _tables()
    monkeypatch.setattr(tables, "HERE", tmp_path)
    hits = {"default": {"hits_all": [0] * 8 + [1] * 2},           # 20
            "lm:default": {"hits_all": [0] * 9 + [1]},             # 10
            "runs/a": {"hits_all": [1] * 3 + [0] * 7},             # 30: 10 above the untrained encoder
            "runs/b": {"hits_all": [1] * 4 + [0] * 6},             # 40
            "runs/c": {"hits_all": [1] * 2 + [0] * 8}}             # 20
    _write(tmp_path, "rankgen-suffix-id-held-out", [1, 1], hits)
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in tables.rankgen_target().splitlines()[2:]}
    assert rows["untrained all-MiniLM-L6-v2 + markers"][1:3] == ["10.00", "0.00"]
    assert rows["untrained all-MiniLM-L6-v2 + markers"][4].strip(" |") == "met"
    assert rows["SmolLM2-135M log-likelihood"][1] == "20.00"
    _write(tmp_path, "rankgen-suffix-id-held-out", [1, 1], {k: v for k, v in hits.items() if k != "runs/c"})
    assert tables.rankgen_target().splitlines()[2].split(" | ")[4].strip(" |") == "–"  # 2 seeds decide nothing


def _grace_final(folder: Path, name: str, spearman: float) -> None:
    metrics = {"steps": 200, "after": {"stsb-test": {"spearman": spearman}, "scifact-test": {"ndcg@10": 30.0}}}
    write_record(folder / "grace-runs" / f"{name}.json", make_record("grace", metrics, "test", 0.0))


def test_the_grace_target_needs_a_gain_above_the_seed_spread_over_three_seeds(tmp_path, monkeypatch):
    tables = _tables()
    monkeypatch.setattr(tables, "HERE", tmp_path)
    base = {encoder: {"stsb-test": {"spearman": value}, "scifact-test": {"ndcg@10": 25.0}}
            for encoder, value in [("raw_text_mean_pooled", 50.0), ("untrained_policy", 58.0)]}
    write_record(tmp_path / "grace-baselines-test.json", make_record("grace-baselines", base, "test", 0.0))
    for name, value in [("seed-42", 59.0), ("seed-43", 61.0), ("seed-44", 60.0)]:  # mean 60, sd 1
        _grace_final(tmp_path, name, value)
    rows = [line.split(" | ") for line in tables.grace_target().splitlines()[2:]]
    assert [row[1] for row in rows] == ["10.00", "2.00"]
    assert [row[3].strip(" |") for row in rows] == ["met", "met"]
    _grace_final(tmp_path, "seed-44", 54.0)  # mean 58, sd 3.61: no gain over the untrained policy
    assert [line.split(" | ")[3].strip(" |") for line in tables.grace_target().splitlines()[2:]] == ["met", "missed"]
    (tmp_path / "grace-runs" / "seed-44.json").unlink()
    assert tables.grace_target().splitlines()[2].split(" | ")[3].strip(" |") == "–"  # 2 seeds decide nothing
    assert "SciFact test nDCG@10" in tables.grace_test()


def test_the_grace_dev_tables_show_the_reward_that_chooses_and_the_dev_sets_after(tmp_path, monkeypatch):
    tables = _tables()
    monkeypatch.setattr(tables, "HERE", tmp_path)
    for name, lr, last in [("dev-lr1e-4", 1e-4, 0.41), ("dev-lr2e-4", 2e-4, 0.47)]:
        metrics = {"during": [{"step": 0, "held_out_reward": 0.30, "held_out_contrastive": -0.2},
                              {"step": 200, "held_out_reward": last, "held_out_contrastive": -0.1}],
                   "after": {"stsb-dev": {"spearman": 60.0}, "scifact-dev": {"ndcg@10": 31.0}}}
        write_record(tmp_path / "grace-runs" / f"{name}.json",
                     make_record("grace", metrics, "test", 4800.0, recipe={"learning_rate": lr}))
    assert Path(tables.best_dev_run("grace")["path"]).stem == "dev-lr2e-4"
    rows = [line.split(" | ") for line in tables.grace_dev().splitlines()[2:]]
    assert [row[1:5] for row in rows] == [["0.0001", "0.300", "0.410", "60.00"], ["0.0002", "0.300", "0.470", "60.00"]]
    assert rows[0][6].strip(" |") == "80"
    assert tables.grace_dev_curve().splitlines()[3].split(" | ")[1:] == ["0.410", "-0.100", "0.470", "-0.100 |"]
