"""Tables of docs/generative.md, generated from the records beside this file (written by study.py)."""
from __future__ import annotations

import statistics
from pathlib import Path

from embedkit.records import fmt, load_record, load_records

HERE = Path(__file__).resolve().parent


def _record(name: str) -> dict:
    return load_record(HERE / name)


def _runs(method: str, prefix: str) -> list[dict]:
    return load_records(HERE / f"{method}-runs", f"{prefix}*.json")


def _mean_spread(values: list[float]) -> str:
    """``mean ± standard deviation`` over seeds (the sample deviation; one value prints alone)."""
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(statistics.mean(values))} ± {fmt(statistics.stdev(values))}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def costs() -> str:
    m = _record("costs.json")["metrics"]
    rows = [
        ["SmolLM2 GEN negatives, 2 one-sentence samples per prefix (batch 16)", fmt(m["gen_negative_s_per_prefix_x2"]), "prefix"],
        ["LM likelihood scorer, 7 candidates", fmt(m["lm_likelihood_s_per_prefix_7"]), "prefix"],
        ["RankGen scorer (MiniLM), 7 candidates", fmt(m["rankgen_suffix_id_s_per_prefix_7"], 3), "prefix"],
        ["RankGen optimisation step, batch 16 (prefix + 4 continuations a row)",
         fmt(m["rankgen_step_s_batch16_5_texts_per_row"]), "step"],
        ["RankGen optimisation step, batch 32", fmt(m["rankgen_step_s_batch32_5_texts_per_row"]), "step"],
        ["8 nucleus samples (rerank)", fmt(m["rerank_sample8_s_per_prefix"]), "prefix"],
        ["RankGen beam search, 2 beams x 4 samples, rescored every 16 tokens", fmt(m["beam_2x4_every16_s_per_prefix"]), "prefix"],
        ["GRACE policy step, 4 STS-B pairs x 4 rationales", fmt(m["grace_policy_step_s_sts"]), "step"],
        ["GRACE policy step, 4 SciFact pairs x 4 rationales", fmt(m["grace_policy_step_s_scifact"]), "step"],
        ["GRACE held-out reward, 32 pairs, greedy", fmt(m["grace_held_out_reward_s"]), "measurement"],
        ["GRACE encode, SciFact abstract (64 tokens + 16-token rationale)", fmt(m["grace_encode_s_per_scifact_doc"], 3), "text"],
        ["GRACE encode, STS-B sentence", fmt(m["grace_encode_s_per_sts_sentence"], 3), "text"],
        ["SmolLM2 mean-pooled raw text, SciFact abstract", fmt(m["raw_lm_encode_s_per_scifact_doc"], 3), "text"],
    ]
    return _table(["step", "seconds", "per"], rows)


TABLES = {
    "generative-costs": costs,
}
