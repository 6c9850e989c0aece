"""results/quantization/tables.py: the Matryoshka targets judged from per-seed records against the base model."""

import pytest

from helpers import load_script


@pytest.fixture()
def tables():
    return load_script("results/quantization/tables.py")


def _record(path: str, scores: dict, split: str = "test") -> dict:
    rows = [{"dim": dim, "kind": "float32", "ndcg_at_10": score, "memory": {"codes": 4 * dim},
             f"stsb_{split}_spearman": 80.0} for dim, score in scores.items()]
    return {"path": path, "metrics": {"rows": rows}, "details": {"split": split}, "cpu": {"model": "test CPU"}}


def test_targets_row_per_seed_and_mean_against_the_base_model_at_128(tables, monkeypatch):
    base = _record("scifact-dims.json", {384: 64.0, 128: 60.0})
    seeds = [_record("test-x-s42.json", {384: 70.0, 128: 68.6}), _record("test-x-s43.json", {384: 70.0, 128: 67.2})]
    monkeypatch.setattr(tables, "_dims_record", lambda: base)
    monkeypatch.setattr(tables, "_test_seeds", lambda: seeds)
    lines = tables.matryoshka_targets().splitlines()
    assert "base at 128 (60.00)" in lines[0]
    assert lines[2] == "| x-s42 | 70.00 | 68.60 | 98.0% | 8.60 |"  # 68.6 / 70 and 68.6 - 60
    assert lines[3] == "| x-s43 | 70.00 | 67.20 | 96.0% | 7.20 |"
    assert lines[4] == ("| mean (min-max) | 70.00 (70.00-70.00) | 67.90 (67.20-68.60) | 97.0% | "
                        "7.90 (spread over seeds 1.40) |")


def test_dev_table_reads_the_dev_spearman_and_names_each_run(tables, monkeypatch):
    runs = [_record("dev-base.json", {384: 74.0, 256: 73.0, 128: 70.0, 64: 60.0}, split="dev")]
    monkeypatch.setattr(tables, "load_records", lambda folder, pattern: runs)
    row = tables.matryoshka_dev().splitlines()[2]
    assert row == "| base | 74.00 / 73.00 / 70.00 / 60.00 | 94.6% | 80.00 / 80.00 |"


def test_test_tables_refuse_to_render_without_seed_records(tables, monkeypatch):
    monkeypatch.setattr(tables, "_test_seeds", lambda: [])
    with pytest.raises(FileNotFoundError, match="test-\\*-s\\*.json"):
        tables.matryoshka_targets()
