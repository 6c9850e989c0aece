"""What a finished run reports: results.json and README.md next to the model, and the run's record.

The record (``embedkit.records``) is what gets committed: model folders stay out of git, so it carries
the resolved recipe, before/after metrics of every evaluation set, training time and steps, the whole
results.json and recipe.yaml, plus the commit, packages, CPU and device of the run.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from embedkit.atomic import write_text_atomic


@dataclass
class TrainResult:
    out_dir: str
    recipe_yaml: str
    base_model: str
    steps: int
    train_seconds: float  # wall time of the optimisation in this invocation (a resumed run counts its part)
    resumed_from: str | None = None
    before: dict = field(default_factory=dict)  # {eval set: metrics} of the base model
    after: dict = field(default_factory=dict)  # {eval set: metrics} of the trained model
    during: list = field(default_factory=list)  # the trainer's evaluation log entries
    headline: dict = field(default_factory=dict)  # {eval set: metric name} shown in tables
    data: dict = field(default_factory=dict)  # what building the training rows reported (DebCSE's sampling)


def evaluation_log(log_history: list[dict]) -> list[dict]:
    """The evaluation entries of a ``SentenceTransformerTrainer``'s log history (``TrainResult.during``)."""
    return [entry for entry in log_history if any(key.startswith("eval_") for key in entry)]


def write_run_files(result: TrainResult, card: str | None = None) -> None:
    """The files beside a saved model: recipe.yaml, results.json and README.md (``card``, by default
    :func:`model_card`); an empty ``eval/`` left by the trainer goes."""
    out_dir = Path(result.out_dir)
    write_text_atomic(out_dir / "recipe.yaml", result.recipe_yaml)
    write_text_atomic(out_dir / "results.json", json.dumps(asdict(result), indent=2) + "\n")
    write_text_atomic(out_dir / "README.md", model_card(result) if card is None else card)
    if (out_dir / "eval").is_dir() and not any((out_dir / "eval").iterdir()):
        (out_dir / "eval").rmdir()  # the trainer makes it for evaluator files; ours writes none


def write_training_record(result: TrainResult, path: str | os.PathLike, command: str, wall_seconds: float,
                          details: dict | None = None) -> Path:
    """The run's record at ``path``: metrics ``before``/``after`` ({eval set: metrics}), ``train_seconds``
    and ``steps``; ``recipe`` the resolved recipe; ``details`` results.json and recipe.yaml as written."""
    import yaml

    from embedkit.records import make_record, write_record

    recipe = yaml.safe_load(result.recipe_yaml)
    metrics = {"before": result.before, "after": result.after, "train_seconds": result.train_seconds,
               "steps": result.steps}
    details = {**(details or {}), "seed": recipe.get("seed"), "headline": result.headline,
               "results_json": asdict(result), "recipe_yaml": result.recipe_yaml}
    return write_record(path, make_record(recipe.get("name") or Path(result.out_dir).name, metrics, command,
                                          wall_seconds, recipe=recipe, details=details))


def results_table(result: TrainResult) -> str:
    lines = ["| evaluation | metric | before | after | change |", "|---|---|---|---|---|"]
    for name, metric in result.headline.items():
        before = result.before.get(name, {}).get(metric)
        after = result.after.get(name, {}).get(metric)
        change = f"{after - before:+.2f}" if before is not None and after is not None else ""
        fmt = (lambda v: f"{v:.2f}" if v is not None else "not run")
        lines.append(f"| {name} | {metric} | {fmt(before)} | {fmt(after)} | {change} |")
    return "\n".join(lines)


def model_card(result: TrainResult) -> str:
    name = Path(result.out_dir).name
    resumed = f" (resumed from {Path(result.resumed_from).name})" if result.resumed_from else ""
    return f"""---
library_name: sentence-transformers
tags: [sentence-transformers, sentence-similarity, embedkit]
base_model: {result.base_model}
---

# {name}

A sentence embedding model trained with embedkit from `{result.base_model}`.
Load it with `SentenceTransformer("{result.out_dir}")`.

## Results of the recipe's own evaluation

{results_table(result)}

Scores x100 (Spearman of cosine similarity for STS, nDCG@10 for retrieval), computed by
`embedkit.evaluation` before and after training. Full metrics: `results.json`.

Training: {result.steps} optimizer steps, {result.train_seconds:.0f} s{resumed}.

## Recipe

Reproduce with `embedkit train recipe.yaml --out DIR` (the recipe below, also saved as `recipe.yaml`):

```yaml
{result.recipe_yaml.rstrip()}
```
"""
