"""What a finished run reports, and the files it leaves next to the model: results.json and README.md."""
from __future__ import annotations

import json
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


def write_results(result: TrainResult) -> None:
    write_text_atomic(Path(result.out_dir) / "results.json", json.dumps(asdict(result), indent=2) + "\n")


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
