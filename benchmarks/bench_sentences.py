"""The unique real sentences of the shared data folder, for index benchmarks.

SciFact abstracts split into sentences, SciFact titles and claims, SNLI premises and hypotheses,
Wikipedia sentences and STS-B sentences: about 100k distinct sentences. A fixed shuffle makes any
prefix (``--limit N``) a fair sample, and keeps the embedding cache's chunks reusable across limits.
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

# A sentence ends at . ! or ? followed by whitespace and an upper-case letter, digit or bracket.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")


def _scifact(root: Path):
    with open(root / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            yield doc["title"]
            yield from _SENTENCE_END.split(doc["text"])
    with open(root / "scifact" / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)["text"]


def _snli(root: Path):
    for name in ("s1.dev", "s2.dev", "s1.test", "s2.test"):
        yield from (root / "nli" / "snli_senteval" / name).read_text(encoding="utf-8").splitlines()


def _wiki(root: Path):
    yield from (root / "wiki" / "wiki1m_for_simcse.first11914.txt").read_text(encoding="utf-8").splitlines()


def _stsb(root: Path):
    for split in ("train", "dev", "test"):
        for line in (root / "stsb" / f"sts-{split}.csv").read_text(encoding="utf-8").splitlines():
            fields = line.split("\t")
            yield fields[5]
            yield fields[6]


def unique_sentences(root: Path, seed: int = 0) -> list[str]:
    """Every distinct non-empty sentence (stripped), in a fixed shuffled order."""
    seen: dict[str, None] = {}
    for source in (_scifact, _snli, _wiki, _stsb):
        for s in source(root):
            s = s.strip()
            if s:
                seen.setdefault(s, None)
    sentences = list(seen)
    random.Random(seed).shuffle(sentences)
    return sentences
