"""results/training/tables.py: the retrieval target judged on the final runs' mean, and the SimCSE/DebCSE row."""

import pytest

from helpers import load_script


@pytest.fixture()
def tables():
    return load_script("results/training/tables.py")


def _final(prefix: str, seed: int, scifact: float, stsb: float) -> dict:
    after = {"scifact-test": {"ndcg@10": scifact}, "stsb-test": {"spearman": stsb}}
    return {"path": f"{prefix}-s{seed}.json", "metrics": {"after": after, "before": {}, "train_seconds": 1000.0,
                                                          "steps": 72},
            "details": {"seed": seed}}


def _targets(tables, monkeypatch, records: dict[str, list[dict]]) -> list[str]:
    monkeypatch.setattr(tables, "_records", lambda group, pattern: records.get(pattern.removesuffix("-s*.json"), []))
    return tables.retrieval_targets().splitlines()[2:]


def test_a_target_is_met_on_the_mean_of_three_seeds_even_when_one_seed_is_below(tables, monkeypatch):
    finals = [_final("final", 42, 73.0, 82.5), _final("final", 43, 71.5, 81.9), _final("final", 44, 72.0, 82.0)]
    assert _targets(tables, monkeypatch, {"final": finals}) == [
        "| lr 5e-5, 1 negative (chosen first) | 3 | 72.17 (71.50) | 82.13 (81.90) | yes |"]


def test_each_final_is_judged_on_its_own_seeds_and_fewer_than_three_decide_nothing(tables, monkeypatch):
    records = {"final": [_final("final", s, 73.0, 81.6) for s in (42, 43, 44)],
               "final-lr1e-4-negatives-3": [_final("final-lr1e-4-negatives-3", 42, 90.0, 90.0)]}
    first, last = _targets(tables, monkeypatch, records)  # no wise-ft records: no row
    assert first.endswith("| 73.00 (73.00) | 81.60 (81.60) | no: STS-B test Spearman missed |")
    assert last.startswith("| lr 1e-4, 3 negatives") and last.endswith("| not yet (under 3 seeds) |")


def test_the_final_tables_keep_the_committed_recipe_apart_from_the_other_finals(tables, monkeypatch):
    patterns = []
    monkeypatch.setattr(tables, "_records", lambda group, pattern: patterns.append(pattern) or [])
    for prefix, _ in tables.RETRIEVAL_FINALS:
        tables.TABLES[f"training-retrieval-{prefix}"]()
    # "final-*.json" would also match final-wise-ft-0.5-s42.json
    assert patterns == ["final-s*.json", "final-wise-ft-0.5-s*.json", "final-lr1e-4-negatives-3-s*.json"]


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


def _moe_scores(split: str, science: float, stsb: float) -> dict:
    scores = {f"science:scifact-{split}": {"ndcg@10": science, "recall@100": 99.0},
              **{f"{d}:stsb-{split}-main-{d}": {"spearman": stsb, "pearson": 1.0} for d in ("news", "captions", "forums")},
              f"all:stsb-{split}": {"spearman": stsb}}
    return scores | ({"nli:snli_senteval-test": {"accuracy": 90.0}} if split == "test" else {})


def test_moe_screen_chooses_by_the_mean_of_the_four_dev_domains(tables, monkeypatch):
    record = {"path": "screen-moe-300-s42.json", "details": {"seed": 42},
              "metrics": {"steps": 300, "train_seconds": 170.0, "before": _moe_scores("dev", 60.0, 80.0),
                          "after": _moe_scores("dev", 64.0, 84.0)}}
    monkeypatch.setattr(tables, "_records", lambda group, pattern: [record])
    base, run = tables.moe_screen().splitlines()[2:]
    assert base == "| base (all-MiniLM-L6-v2) | 0 | – | – | 60.00 | 80.00 | 80.00 | 80.00 | 80.00 | 75.00 |"
    assert run == "| moe-300-s42 | 300 | 170 s | – | 64.00 | 84.00 | 84.00 | 84.00 | 84.00 | **79.00** |"


def test_moe_final_pairs_moe_with_each_baseline_by_seed_on_test_and_on_dev(tables, monkeypatch):
    def record(row, seed, science):
        return {"path": f"final-{row}-s{seed}.json", "details": {"seed": seed},
                "metrics": {"train_seconds": 100.0,
                            "before": _moe_scores("test", 60.0, 80.0) | _moe_scores("dev", 70.0, 85.0),
                            "after": _moe_scores("test", science, 82.0) | _moe_scores("dev", science + 10, 86.0)}}

    records = {"mixed": [record("mixed", 42, 64.0)],
               "separate": [record("separate", 42, 65.0), record("separate", 43, 66.0)],
               "moe": [record("moe", 42, 66.0), record("moe", 43, 66.5), record("moe", 44, 70.0)]}
    monkeypatch.setattr(tables, "_records", lambda group, pattern: records[pattern.split("-")[1]])
    base, mixed, separate, moe, minus_separate, minus_mixed = tables.moe_final("test").splitlines()[2:]
    assert base.startswith("| base (all-MiniLM-L6-v2) | – | – | 60.00 | 80.00 |")  # the same in every seed: one value
    assert mixed.startswith("| one model, all domains mixed | 1 | 100 s | 64.00 |")
    assert separate.startswith("| 5 separate models | 2 | 100 (100-100) s | 65.50 (65.00-66.00) |")
    assert moe.startswith("| MoE (one model, 5 experts) | 3 | 100 (100-100) s | 67.50 (66.00-70.00) |")
    # seed 44 has no separate row, so it is not paired: (66.0 - 65.0 + 66.5 - 66.0) / 2
    assert minus_separate.startswith("| MoE - separate (paired by seed) | 2 | – | 0.75 (0.50-1.00) | 0.00 (0.00-0.00) |")
    assert minus_separate.endswith("| 0.00 (0.00-0.00) |")  # the NLI column
    assert minus_mixed.startswith("| MoE - mixed (paired by seed) | 1 | – | 2.00 | 0.00 |")
    dev = tables.moe_final("dev").splitlines()
    assert dev[0].count("|") == 9 and "NLI" not in dev[0]  # no held-out NLI split
    assert dev[2].startswith("| base (all-MiniLM-L6-v2) | – | – | 70.00 | 85.00 |")
    assert dev[5].startswith("| MoE (one model, 5 experts) | 3 | 100 (100-100) s | 77.50 (76.00-80.00) | 86.00")
    records["moe"][2]["metrics"]["before"] = _moe_scores("test", 61.0, 80.0)  # records that disagree show it
    assert tables.moe_final("test").splitlines()[2].startswith("| base (all-MiniLM-L6-v2) | – | – | 60.50 (60.00-61.00) |")


def test_ccp_steps_keep_the_scored_entry_of_a_step_that_also_has_a_spread_entry(tables, monkeypatch):
    during = [{"step": 30, "eval_scifact-dev-cut_ndcg@10": 85.0}, {"step": 30, "embedding_spread": 0.4},
              {"step": 60, "embedding_spread": 0.4}]
    record = {"path": "screen-steps-60-s42.json",
              "details": {"results_json": {"before": {"scifact-dev-cut": {"ndcg@10": 86.0}}, "during": during,
                                           "steps": 60, "after": {"scifact-dev-cut": {"ndcg@10": 86.5}}}}}
    monkeypatch.setattr(tables, "_records", lambda group, pattern: [record])
    assert tables.ccp_steps().splitlines()[2:] == ["| steps-60-s42 | 0 | 86.00 |", "| steps-60-s42 | 30 | 85.00 |",
                                                    "| steps-60-s42 | 60 | 86.50 |"]
