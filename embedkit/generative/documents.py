"""RankGen training examples from documents: a prefix, its true continuation, and continuations
taken from elsewhere in the same document (the paper's INBOOK negatives).

Documents come from ``../shared/data``: windows of consecutive Wikipedia sentences (the wiki file
keeps article order but marks no article boundaries, so a window can straddle two articles), and
SciFact abstracts split into sentences.
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from embedkit.data.beir import iter_documents
from embedkit.errors import DataError

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])")


@dataclass(frozen=True)
class SourceDocument:
    id: str
    sentences: tuple[str, ...]


@dataclass(frozen=True)
class Example:
    """One prefix with its true continuation and in-document negatives (continuations of equal length
    taken from other places in the same document, never overlapping the true one)."""

    id: str
    doc_id: str
    prefix: str
    suffix: str
    in_doc_negatives: tuple[str, ...] = field(default=())


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def wiki_documents(path, sentences_per_document: int = 12, min_sentences: int = 6) -> list[SourceDocument]:
    """Consecutive lines of a one-sentence-per-line file, grouped ``sentences_per_document`` at a time."""
    lines = [doc.text.strip() for doc in iter_documents(path)]
    docs = []
    for start in range(0, len(lines), sentences_per_document):
        chunk = tuple(lines[start:start + sentences_per_document])
        if len(chunk) >= min_sentences:
            docs.append(SourceDocument(f"wiki:{start}", chunk))
    return docs


def corpus_documents(path, min_sentences: int = 6) -> list[SourceDocument]:
    """Documents of a BEIR corpus (e.g. SciFact abstracts) split into sentences."""
    docs = []
    for doc in iter_documents(path):
        sentences = tuple(split_sentences(doc.text))
        if len(sentences) >= min_sentences:
            docs.append(SourceDocument(f"corpus:{doc.id}", sentences))
    return docs


def is_held_out(doc_id: str, fraction: float) -> bool:
    """A stable, seed-free train/held-out split by document (hash of the id)."""
    digest = int(hashlib.sha256(doc_id.encode()).hexdigest()[:8], 16)
    return digest / 0xFFFFFFFF < fraction


def make_examples(documents: Iterable[SourceDocument], prefix_sentences: int = 3, suffix_sentences: int = 1,
                  in_doc_negatives: int = 2, examples_per_document: int = 1, seed: int = 0) -> list[Example]:
    """Up to ``examples_per_document`` (prefix, continuation) cuts per document, at sentence boundaries.

    A document needs room for the prefix, the continuation and ``in_doc_negatives`` non-overlapping
    continuations elsewhere; shorter documents are skipped.
    """
    rng = random.Random(seed)
    examples = []
    for doc in documents:
        s = doc.sentences
        cuts = list(range(prefix_sentences, len(s) - suffix_sentences + 1))
        rng.shuffle(cuts)
        for cut in cuts[:examples_per_document]:
            # anywhere else in the document, the prefix included (repeating it is a typical LM error)
            starts = [i for i in range(len(s) - suffix_sentences + 1)
                      if i + suffix_sentences <= cut or i >= cut + suffix_sentences]
            if len(starts) < in_doc_negatives:
                continue
            chosen = rng.sample(starts, in_doc_negatives)
            examples.append(Example(
                id=f"{doc.id}@{cut}",
                doc_id=doc.id,
                prefix=" ".join(s[cut - prefix_sentences:cut]),
                suffix=" ".join(s[cut:cut + suffix_sentences]),
                in_doc_negatives=tuple(" ".join(s[i:i + suffix_sentences]) for i in sorted(chosen)),
            ))
    return examples


def split_examples(examples: Sequence[Example], held_out_fraction: float) -> tuple[list[Example], list[Example]]:
    train = [e for e in examples if not is_held_out(e.doc_id, held_out_fraction)]
    held = [e for e in examples if is_held_out(e.doc_id, held_out_fraction)]
    if not train:
        raise DataError(f"no training documents left after holding out {held_out_fraction:.0%}")
    return train, held
