"""Print the MoE results table (markdown) from the run folders of one or more seeds.

Each SEED_DIR holds what the commands in docs/moe-ccp.md write for one seed: ``moe/results.json``
(base row = its ``before``, MoE row = its ``after``), ``mixed/results.json`` and ``separate.json`` (the
output of ``python -m embedkit.training.moe``). With several seeds, each cell is the mean ± half the
range over the seeds that have the row; the last rows are MoE - separate, as a mean and per seed.

    python training/moe_table.py runs/moe300-s42 runs/moe300-s7 runs/moe300-s1
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

COLUMNS = [("science:scifact-test", "science nDCG@10"), ("news:stsb-test-main-news", "news Spearman"),
           ("captions:stsb-test-main-captions", "captions Spearman"), ("forums:stsb-test-main-forums", "forums Spearman"),
           ("all:stsb-test", "STS-B all (routed by genre)"), ("nli:snli_senteval-test", "NLI triplet accuracy")]
HEADLINE = {"science:scifact-test": "ndcg@10", "nli:snli_senteval-test": "accuracy"}


def headline(scores: dict, key: str) -> float:
    return float(scores[key][HEADLINE.get(key, "spearman")])


def read_rows(seed_dir: Path) -> dict[str, dict]:
    def load(path: Path) -> dict:
        if not path.is_file():
            raise SystemExit(f"{path}: missing (run the commands in docs/moe-ccp.md for this seed first)")
        return json.loads(path.read_text(encoding="utf-8"))

    moe = load(seed_dir / "moe" / "results.json")
    mixed = seed_dir / "mixed" / "results.json"  # optional: the claim compares MoE with separate models
    return {"base (all-MiniLM-L6-v2)": moe["before"],
            "one model, all domains mixed": load(mixed)["after"] if mixed.is_file() else None,
            "5 separate models": load(seed_dir / "separate.json"), "MoE (one model, 5 experts)": moe["after"]}


def cell(values: list[float], signed: bool = False) -> str:
    mean = statistics.mean(values)
    text = f"{mean:+.2f}" if signed else f"{mean:.2f}"
    return text if len(values) == 1 else f"{text} ± {(max(values) - min(values)) / 2:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("seed_dirs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    per_seed = [read_rows(d) for d in args.seed_dirs]
    print("| model | " + " | ".join(title for _, title in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for name in per_seed[0]:
        seeds = [rows[name] for rows in per_seed if rows[name] is not None]
        if seeds:
            print(f"| {name} | " + " | ".join(cell([headline(s, key) for s in seeds]) for key, _ in COLUMNS) + " |")
    deltas = [[headline(rows["MoE (one model, 5 experts)"], key) - headline(rows["5 separate models"], key)
               for rows in per_seed] for key, _ in COLUMNS]
    print("| MoE - separate | " + " | ".join(cell(d, signed=True) for d in deltas) + " |")
    print("| MoE - separate, per seed | " + " | ".join(" / ".join(f"{v:+.2f}" for v in d) for d in deltas) + " |")
    print(f"\n{len(per_seed)} seed(s): " + ", ".join(str(d) for d in args.seed_dirs)
          + ("; mean ± half the range over seeds" if len(per_seed) > 1 else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
