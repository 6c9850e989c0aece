"""SNLI in SentEval's layout (``s1.<split>``, ``s2.<split>``, ``labels.<split>``: premise, hypothesis and
gold label on line *i* of each), and the (premise, entailment, contradiction) triplets SimCSE builds from it."""
from __future__ import annotations

from pathlib import Path

from embedkit.data.textio import read_text, split_lines
from embedkit.errors import DataError

COLUMNS = ("s1", "s2", "labels")


def read_snli_senteval(folder: Path, split: str) -> list[tuple[str, str, str]]:
    """(premise, hypothesis, gold label) of every line of ``split``, whitespace-stripped."""
    files = [folder / f"{name}.{split}" for name in COLUMNS]
    for file in files:
        if not file.is_file():
            raise DataError(f"no {file.name}: expected a SentEval SNLI folder with s1/s2/labels.{split}", path=folder)
    columns = [split_lines(read_text(f)) for f in files]
    if len({len(c) for c in columns}) != 1:
        raise DataError(f"s1/s2/labels.{split} have different line counts {[len(c) for c in columns]}", path=folder)
    return [(p.strip(), h.strip(), label.strip()) for p, h, label in zip(*columns)]


def snli_pairs(folder: Path, split: str, label: str) -> list[tuple[str, str]]:
    """(premise, hypothesis) of every pair with gold ``label`` in a SentEval SNLI folder's split."""
    return [(p, h) for p, h, gold in read_snli_senteval(folder, split) if gold == label]


def snli_triplets(folder: Path, split: str) -> list[tuple[str, str, str]]:
    """(premise, entailment, contradiction): for each premise with both, each entailment hypothesis
    paired with that premise's contradictions in round-robin order (SimCSE's construction)."""
    groups: dict[str, dict[str, list[str]]] = {}
    for premise, hypothesis, gold in read_snli_senteval(folder, split):
        groups.setdefault(premise, {}).setdefault(gold, []).append(hypothesis)
    triplets = []
    for premise, by_label in groups.items():
        entailed, contradicted = by_label.get("entailment", []), by_label.get("contradiction", [])
        for i, hypothesis in enumerate(entailed if contradicted else []):
            triplets.append((premise, hypothesis, contradicted[i % len(contradicted)]))
    return triplets
