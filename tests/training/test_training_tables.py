"""results/training/tables.py: the retrieval target judged on the final runs' mean, and the SimCSE/DebCSE row."""

import pytest

from helpers import load_script


@pytest.fixture()
def tables():
    return load_script("results/training/tables.py")


def _final(seed: int, scifact: float, stsb: float) -> dict:
    after = {"scifact-test": {"ndcg@10": scifact}, "stsb-test": {"spearman": stsb}}
    return {"path": f"final-s{seed}.json", "metrics": {"after": after, "before": {}, "train_seconds": 1000.0,
                                                       "steps": 72},
            "details": {"seed": seed}}


def _targets(tables, monkeypatch, records) -> list[str]:
    monkeypatch.setattr(tables, "_records", lambda group, pattern="*.json": records)
    return tables.retrieval_targets().splitlines()[2:]


def test_a_target_is_met_on_the_mean_of_three_seeds_even_when_one_seed_is_below(tables, monkeypatch):
    rows = _targets(tables, monkeypatch, [_final(42, 73.0, 82.5), _final(43, 71.5, 81.9), _final(44, 72.0, 82.0)])
    assert rows[0] == "| SciFact test nDCG@10 >= 72.0 | 72.17 (3 seeds) | 71.50 | yes |"
    assert rows[1] == "| STS-B test Spearman >= 82.0 | 82.13 (3 seeds) | 81.90 | yes |"


def test_a_mean_below_the_floor_is_not_met_and_fewer_than_three_seeds_decide_nothing(tables, monkeypatch):
    rows = _targets(tables, monkeypatch, [_final(42, 73.0, 81.6), _final(43, 72.4, 81.6), _final(44, 72.8, 81.6)])
    assert rows[1].endswith("| 81.60 | no |")
    rows = _targets(tables, monkeypatch, [_final(42, 90.0, 90.0)])
    assert rows[0].endswith("| not yet (under 3 seeds) |")


def test_simcse_against_debcse_reports_the_sampling_shift_of_debcse_only(tables, monkeypatch):
    def record(method, seed, dev, sampling):
        return {"path": f"{method}-s{seed}.json", "recipe": {"batch_size": 64},
                "metrics": {"steps": 187, "train_seconds": 500.0, "before": {"stsb-dev": {"spearman": 86.0},
                                                                             "stsb-test": {"spearman": 82.0}},
                            "after": {"stsb-dev": {"spearman": dev}, "stsb-test": {"spearman": 83.0}}},
                "details": {"seed": seed, "results_json": {"data": {"debcse_sampling": sampling}} if sampling else {}}}

    sampling = {"surface_auc_uniform": 0.99, "surface_auc_sampled": 0.85,
                "uniform_dropout_view_share": 0.6, "sampled_dropout_view_share": 0.0}
    records = {"simcse-unsup": [record("simcse-unsup", 42, 87.0, None), record("simcse-unsup", 43, 88.0, None)],
               "debcse": [record("debcse", 42, 85.0, sampling)]}
    monkeypatch.setattr(tables, "_records", lambda group, pattern: records[pattern.split("-s*")[0]])
    simcse, debcse = tables.simcse_vs_debcse().splitlines()[2:]
    assert simcse == ("| simcse-unsup | 42, 43 | 187 × 64 | 500 (500-500) s | 86.00 (86.00-86.00) → **87.50 (87.00-88.00)** "
                      "| 82.00 (82.00-82.00) → **83.00 (83.00-83.00)** | – | – |")
    assert debcse.endswith("| 0.990 → 0.850 | 0.600 → 0.000 |")
