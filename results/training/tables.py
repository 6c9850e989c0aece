"""Tables of the training records (``embedkit train ... --record results/training/<group>/<name>.json``).

Every training record holds the run's before/after metrics on each evaluation set (x100), its steps, its
training time and its resolved recipe. Figures are formatted by ``embedkit.records.fmt``; a 3-seed cell
is ``mean (min-max)``, the spread being max - min.
"""
from __future__ import annotations

from pathlib import Path

from embedkit.records import fmt, fmt_seeds as _seeds, load_record, load_records

HERE = Path(__file__).resolve().parent
HEADLINE = {"sts": "spearman", "beir": "ndcg@10"}


def _records(group: str, pattern: str = "*.json") -> list[dict]:
    folder = HERE / group
    return load_records(folder, pattern) if folder.is_dir() else []


def _score(record: dict, side: str, name: str) -> float | None:
    metrics = record["metrics"].get(side, {}).get(name)
    if metrics is None:
        return None
    metric = record["details"]["headline"].get(name) if "headline" in record.get("details", {}) else None
    return metrics.get(metric) if metric else _headline(metrics)


def _headline(metrics: dict) -> float | None:
    """A set's headline when the record does not name it: nDCG@10 (beir), Spearman (sts), accuracy (triplets)."""
    return next((metrics[key] for key in ("ndcg@10", "spearman", "accuracy") if key in metrics), None)


def _change(record: dict, name: str) -> str:
    before, after = _score(record, "before", name), _score(record, "after", name)
    if after is None:
        return "–"
    return f"{fmt(before)} → **{fmt(after)}**" if before is not None else f"**{fmt(after)}**"


def _seconds(record: dict) -> str:
    return f"{fmt(record['metrics']['train_seconds'], 0)} s"


def _load(record: dict) -> str:
    load = record.get("details", {}).get("load_average_1m")
    return f"{fmt(load['start'], 1)} / {fmt(load['end'], 1)}" if load else "–"


def _command(record: dict) -> str:
    words = record["command"].split(" --out ")[0].split(" --record ")[0]
    return f"`{words}`"


# ------------------------------------------------------------------------------------------ retrieval


def _screen(group: str) -> str:
    """One seed per change (``screen-*.json``), on SciFact dev and STS-B dev."""
    rows = ["| run | command | steps | training time | load (start / end) | STS-B dev | SciFact dev nDCG@10 |",
            "|---|---|---|---|---|---|---|"]
    for record in _records(group, "screen-*.json"):
        name = Path(record["path"]).stem.removeprefix("screen-")
        rows.append(f"| {name} | {_command(record)} | {record['metrics']['steps']} | {_seconds(record)} | "
                    f"{_load(record)} | {_change(record, 'stsb-dev')} | {_change(record, 'scifact-dev')} |")
    return "\n".join(rows)


def retrieval_screen() -> str:
    """Training on train-fit, chosen on SciFact dev and STS-B dev."""
    return _screen("retrieval-scifact")


def wise_ft() -> str:
    """WiSE-FT alphas of a trained run, scored on the dev sets (alpha 0 = the base model, 1 = the run)."""
    rows = ["| run | alpha | STS-B dev | SciFact dev nDCG@10 |", "|---|---|---|---|"]
    for record in _records("retrieval-scifact", "wise-ft-*.json"):
        run = Path(record["path"]).stem.removeprefix("wise-ft-")
        for alpha, metrics in record["metrics"]["alphas"].items():
            rows.append(f"| {run} | {alpha} | {fmt(metrics['stsb-dev']['spearman'])} | "
                        f"{fmt(metrics['scifact-dev']['ndcg@10'])} |")
    return "\n".join(rows)


def _final_table(group: str, pattern: str, sets: list[tuple[str, str]]) -> str:
    return _seed_table(_records(group, pattern), sets)


def _seed_table(records: list[dict], sets: list[tuple[str, str]]) -> str:
    header = "| seed | training time | " + " | ".join(label for _, label in sets) + " |"
    rows = [header, "|---|---|" + "---|" * len(sets)]
    for record in records:
        rows.append(f"| {record['details']['seed']} | {_seconds(record)} | "
                    + " | ".join(_change(record, name) for name, _ in sets) + " |")
    if len(records) > 1:
        def cell(name: str) -> str:
            return (f"{_seeds([_score(r, 'before', name) for r in records])} → "
                    f"**{_seeds([_score(r, 'after', name) for r in records])}**")
        times = _seeds([r["metrics"]["train_seconds"] for r in records], digits=0)
        rows.append(f"| mean (min-max) of {len(records)} | {times} s | "
                    + " | ".join(cell(name) for name, _ in sets) + " |")
    return "\n".join(rows)


# The final runs of retrieval-scifact, each a configuration dev named, 3 seeds (``<prefix>-sN.json``).
RETRIEVAL_FINALS = [
    ("final", "lr 5e-5, 1 negative (chosen first)"),
    ("final-wise-ft-0.5", "the same at WiSE-FT alpha 0.5 (dev choice for both targets)"),
    ("final-lr1e-4-negatives-3", "lr 1e-4, 3 negatives (dev choice for SciFact alone)"),
]
RETRIEVAL_SETS = [("stsb-dev", "STS-B dev"), ("scifact-dev", "SciFact dev nDCG@10"),
                  ("stsb-test", "STS-B test"), ("scifact-test", "SciFact test nDCG@10")]


def retrieval_final(prefix: str) -> str:
    """One final configuration, 3 seeds: before → after on dev and test (test scored once, in these runs)."""
    return _final_table("retrieval-scifact", f"{prefix}-s*.json", RETRIEVAL_SETS)


# The model-quality target, judged on each final configuration: 3-seed means on test, both at once.
RETRIEVAL_TARGETS = [("scifact-test", "SciFact test nDCG@10", 72.0), ("stsb-test", "STS-B test Spearman", 82.0)]


def retrieval_targets() -> str:
    """Each final configuration against both targets: the mean (worst seed); "met" only on a 3-seed mean."""
    rows = ["| final runs | seeds | " + " | ".join(f"{label} >= {fmt(floor, 1)}: mean (worst seed)"
                                                for _, label, floor in RETRIEVAL_TARGETS) + " | both met |",
            "|---|---|" + "---|" * len(RETRIEVAL_TARGETS) + "---|"]
    for prefix, label in RETRIEVAL_FINALS:
        records = _records("retrieval-scifact", f"{prefix}-s*.json")
        if not records:
            continue
        cells, met = [], []
        for name, _, floor in RETRIEVAL_TARGETS:
            after = [_score(r, "after", name) for r in records]
            mean = sum(after) / len(after)
            cells.append(f"{fmt(mean)} ({fmt(min(after))})")
            met.append(mean >= floor)
        verdict = "not yet (under 3 seeds)" if len(records) < 3 else "yes" if all(met) else (
            "no: " + ", ".join(label for (_, label, _), ok in zip(RETRIEVAL_TARGETS, met) if not ok) + " missed")
        rows.append(f"| {label} | {len(records)} | " + " | ".join(cells) + f" | {verdict} |")
    return "\n".join(rows)


def matryoshka_screen() -> str:
    """matryoshka-scifact's widths weighting, one seed each on train-fit (test figures: docs/quantization.md)."""
    return _screen("matryoshka-scifact")


def matryoshka_seeds() -> str:
    """The chosen variant's screen run (seed 42) and its further seeds (``seed-<variant>-s<seed>.json``)."""
    seeds = _records("matryoshka-scifact", "seed-*.json")
    if not seeds:
        raise FileNotFoundError(f"no seed-*.json records in {HERE / 'matryoshka-scifact'}")
    variant = Path(seeds[0]["path"]).stem.removeprefix("seed-").rsplit("-s", 1)[0]
    return _seed_table(_records("matryoshka-scifact", f"screen-{variant}-s*.json") + seeds,
                       [("stsb-dev", "STS-B dev"), ("scifact-dev", "SciFact dev nDCG@10 (384 dims)")])


def retrieval_hybrid() -> str:
    """The final runs' models through the dense + BM25 hybrid (``evaluation/record_eval.py``), a separate row."""
    rows = ["| seed | SciFact dev nDCG@10, hybrid | SciFact test nDCG@10, hybrid |", "|---|---|---|"]
    seeds = sorted({p.stem.split("-")[2] for p in (HERE / "retrieval-scifact").glob("hybrid-final-*.json")})
    values = {"dev": [], "test": []}
    for seed in seeds:
        cells = []
        for split in ("dev", "test"):
            path = HERE / "retrieval-scifact" / f"hybrid-final-{seed}-scifact-{split}-hybrid.json"
            value = load_record(path)["metrics"]["ndcg@10"] if path.exists() else None
            values[split].append(value)
            cells.append(fmt(value))
        rows.append(f"| {seed.removeprefix('s')} | " + " | ".join(cells) + " |")
    if len(seeds) > 1:
        rows.append(f"| mean (min-max) of {len(seeds)} | {_seeds(values['dev'])} | {_seeds(values['test'])} |")
    return "\n".join(rows)


# ------------------------------------------------------------------------------- DebCSE against SimCSE


def simcse_vs_debcse() -> str:
    """Unsupervised SimCSE and DebCSE at the same steps and batch size, 3 seeds each, STS-B dev and test."""
    rows = ["| recipe | seeds | steps × batch | training time | STS-B dev | STS-B test | sampled pairs' surface AUC (unweighted → drawn) | positives that are dropout views (unweighted → drawn) |",
            "|---|---|---|---|---|---|---|---|"]
    for method in ("simcse-unsup", "debcse"):
        records = _records("simcse-vs-debcse", f"{method}-s*.json")
        if not records:
            continue
        seeds = ", ".join(str(r["details"]["seed"]) for r in records)
        steps = {f"{r['metrics']['steps']} × {r['recipe']['batch_size']}" for r in records}
        times = _seeds([r["metrics"]["train_seconds"] for r in records], digits=0)
        sampling = [r["details"]["results_json"].get("data", {}).get("debcse_sampling") for r in records]
        def shift(unweighted: str, drawn: str) -> str:
            if not all(sampling):  # SimCSE draws nothing
                return "–"
            return f"{_seeds([s[unweighted] for s in sampling], 3)} → {_seeds([s[drawn] for s in sampling], 3)}"
        auc = shift("surface_auc_uniform", "surface_auc_sampled")
        views = shift("uniform_dropout_view_share", "sampled_dropout_view_share")
        rows.append(f"| {method} | {seeds} | {', '.join(sorted(steps))} | {times} s | "
                    f"{_seeds([_score(r, 'before', 'stsb-dev') for r in records])} → "
                    f"**{_seeds([_score(r, 'after', 'stsb-dev') for r in records])}** | "
                    f"{_seeds([_score(r, 'before', 'stsb-test') for r in records])} → "
                    f"**{_seeds([_score(r, 'after', 'stsb-test') for r in records])}** | {auc} | {views} |")
    return "\n".join(rows)


# ------------------------------------------------------------------------------------------------ CCP


def ccp_screen() -> str:
    """SciFact dev on the full corpus (no labels used in training) and STS-B dev."""
    return _screen("ccp-scifact")


def ccp_steps() -> str:
    """The evaluations during the longest screen run: SciFact dev on a 1,000-document cut (dev queries'
    judged abstracts and others), every 30 steps."""
    rows = ["| run | step | SciFact dev nDCG@10 (1,000-document cut) |", "|---|---|---|"]
    for record in _records("ccp-scifact", "screen-*.json"):
        results = record["details"]["results_json"]
        points = [(0, results["before"].get("scifact-dev-cut", {}).get("ndcg@10"))]
        points += [(e["step"], e.get("eval_scifact-dev-cut_ndcg@10")) for e in results["during"]]
        points += [(results["steps"], results["after"].get("scifact-dev-cut", {}).get("ndcg@10"))]
        name = Path(record["path"]).stem.removeprefix("screen-")
        # a step also has entries without the score (the collapse guard's spread): keep the scored one
        for step, value in dict((step, value) for step, value in points if value is not None).items():
            rows.append(f"| {name} | {step} | {fmt(value)} |")
    return "\n".join(rows)


def ccp_final() -> str:
    return _final_table("ccp-scifact", "final-*.json",
                        [("stsb-dev", "STS-B dev"), ("scifact-dev", "SciFact dev nDCG@10"),
                         ("stsb-test", "STS-B test"), ("scifact-test", "SciFact test nDCG@10")])


# ------------------------------------------------------------------------------------------------ MoE

MOE_DOMAINS = [("science", "scifact", "science nDCG@10"), ("news", "stsb", "news Spearman"),
               ("captions", "stsb", "captions Spearman"), ("forums", "stsb", "forums Spearman")]
MOE_ROWS = [("mixed", "one model, all domains mixed"), ("separate", "5 separate models"),
            ("moe", "MoE (one model, 5 experts)")]


def _moe_name(domain: str, file: str, split: str) -> str:
    genre = f"-main-{domain}" if file == "stsb" else ""
    return f"{domain}:{file}-{split}{genre}"


def _moe_sets(split: str) -> list[tuple[str, str]]:
    sets = [(_moe_name(d, f, split), label) for d, f, label in MOE_DOMAINS]
    sets.append((f"all:stsb-{split}", "STS-B all (routed by genre)"))
    return sets + ([("nli:snli_senteval-test", "NLI triplet accuracy")] if split == "test" else [])


def _moe_mean(record: dict, side: str) -> float | None:
    """The budget's selection score: the mean of the four domains' dev headlines."""
    values = [_score(record, side, _moe_name(d, f, "dev")) for d, f, _ in MOE_DOMAINS]
    return None if None in values else sum(values) / len(values)


def moe_screen() -> str:
    """The MoE at each budget (``screen-moe-STEPS-sN.json``), on each domain's dev set; chosen by the mean."""
    sets = _moe_sets("dev")
    rows = ["| run | steps | training time | load (start / end) | " + " | ".join(label for _, label in sets)
            + " | mean of the 4 domains |", "|---|---|---|---|" + "---|" * (len(sets) + 1)]
    records = sorted(_records("moe-domains", "screen-*.json"), key=lambda r: (r["metrics"]["steps"], r["path"]))
    if records:
        rows.append("| base (all-MiniLM-L6-v2) | 0 | – | – | "
                    + " | ".join(fmt(_score(records[0], "before", n)) for n, _ in sets)
                    + f" | {fmt(_moe_mean(records[0], 'before'))} |")
    for record in records:
        rows.append(f"| {Path(record['path']).stem.removeprefix('screen-')} | {record['metrics']['steps']} | "
                    f"{_seconds(record)} | {_load(record)} | "
                    + " | ".join(fmt(_score(record, "after", n)) for n, _ in sets)
                    + f" | **{fmt(_moe_mean(record, 'after'))}** |")
    return "\n".join(rows)


def moe_final(split: str) -> str:
    """The chosen budget, seeds as recorded (``final-{mixed,separate,moe}-sN.json``), on each domain's
    ``split`` set: mean (min-max) over the seeds, and the MoE minus each baseline, paired by seed."""
    sets = _moe_sets(split)
    by_row = {row: {r["details"]["seed"]: r for r in _records("moe-domains", f"final-{row}-s*.json")}
              for row, _ in MOE_ROWS}
    rows = ["| model | seeds | training time | " + " | ".join(label for _, label in sets) + " |",
            "|---|---|---|" + "---|" * len(sets)]
    if by_row["moe"]:
        def base(name: str) -> str:
            # the untrained model does not depend on the seed: one value, unless the records disagree
            scores = {round(s, 6) for s in (_score(r, "before", name) for r in by_row["moe"].values()) if s is not None}
            return _seeds(sorted(scores))
        rows.append("| base (all-MiniLM-L6-v2) | – | – | " + " | ".join(base(n) for n, _ in sets) + " |")
    for row, label in MOE_ROWS:
        records = list(by_row[row].values())
        if records:
            times = _seeds([r["metrics"]["train_seconds"] for r in records], digits=0)
            rows.append(f"| {label} | {len(records)} | {times} s | "
                        + " | ".join(_seeds([_score(r, "after", n) for r in records]) for n, _ in sets)
                        + " |")
    for baseline in ("separate", "mixed"):
        paired = sorted(set(by_row["moe"]) & set(by_row[baseline]))
        if not paired:
            continue

        def difference(name: str, seed: int) -> float | None:
            moe, other = (_score(by_row[r][seed], "after", name) for r in ("moe", baseline))
            return None if moe is None or other is None else moe - other
        rows.append(f"| MoE - {baseline} (paired by seed) | {len(paired)} | – | "
                    + " | ".join(_seeds([difference(n, seed) for seed in paired]) for n, _ in sets) + " |")
    return "\n".join(rows)


TABLES = {
    "training-retrieval-screen": retrieval_screen,
    "training-retrieval-wise-ft": wise_ft,
    **{f"training-retrieval-{prefix}": (lambda prefix=prefix: retrieval_final(prefix))
       for prefix, _ in RETRIEVAL_FINALS},
    "training-retrieval-targets": retrieval_targets,
    "training-retrieval-hybrid": retrieval_hybrid,
    "training-matryoshka-screen": matryoshka_screen,
    "training-matryoshka-seeds": matryoshka_seeds,
    "training-simcse-vs-debcse": simcse_vs_debcse,
    "training-ccp-screen": ccp_screen,
    "training-ccp-steps": ccp_steps,
    "training-ccp-final": ccp_final,
    "training-moe-screen": moe_screen,
    "training-moe-final": lambda: moe_final("test"),
    "training-moe-final-dev": lambda: moe_final("dev"),
}
