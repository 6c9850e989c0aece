"""RankGen examples from documents: a prefix, its true continuation, and continuations taken from
elsewhere in the same document (the paper's INBOOK negatives).

Documents are the abstracts of a BEIR corpus (SciFact) split into sentences with pysbd (cached: the
split of SciFact's 5,183 abstracts takes about a minute of CPU), or windows of consecutive lines of a
one-sentence-per-line file (the Wikipedia file keeps article order but marks no article boundaries, so
a window can straddle two articles).

Documents are assigned once to ``train``, ``dev`` or ``held-out`` by a hash of their id
(:func:`document_split`), so a held-out document never contributes a training prefix, and the dev
slice (for choosing the learning rate and the negatives mix) is carved out of the training documents.
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal, Sequence

from embedkit.atomic import write_text_atomic
from embedkit.data.beir import iter_documents
from embedkit.generative.sentences import split_sentences
from embedkit.paths import cache_dir

Split = Literal["train", "dev", "held-out"]


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


def wiki_documents(path, sentences_per_document: int = 12, min_sentences: int = 5) -> list[SourceDocument]:
    """Consecutive lines of a one-sentence-per-line file, grouped ``sentences_per_document`` at a time."""
    lines = [doc.text.strip() for doc in iter_documents(path)]
    docs = []
    for start in range(0, len(lines), sentences_per_document):
        chunk = tuple(lines[start:start + sentences_per_document])
        if len(chunk) >= min_sentences:
            docs.append(SourceDocument(f"wiki:{start}", chunk))
    return docs


def corpus_documents(path, min_sentences: int = 5) -> list[SourceDocument]:
    """Documents of a BEIR corpus (its ``text``, e.g. SciFact abstracts) split into sentences."""
    return [SourceDocument(f"corpus:{doc_id}", tuple(sentences))
            for doc_id, sentences in _split_corpus(Path(path)) if len(sentences) >= min_sentences]


def _split_corpus(path: Path) -> list[tuple[str, list[str]]]:
    """Every document's sentences, read from a cache keyed by the corpus file's bytes."""
    import pysbd

    docs = list(iter_documents(path))
    h = hashlib.sha256(f"pysbd {pysbd.__version__}\0".encode())
    for doc in docs:
        h.update(f"{doc.id}\0{doc.text}\0".encode("utf-8", "surrogatepass"))
    cached = cache_dir() / "sentences" / f"{h.hexdigest()[:16]}.jsonl"
    if cached.exists():
        return [(str(r["id"]), list(r["sentences"])) for r in map(json.loads, cached.read_text("utf-8").splitlines())]
    from tqdm.auto import tqdm

    out = [(doc.id, split_sentences(doc.text)) for doc in tqdm(docs, desc="sentences (pysbd)", unit="doc")]
    write_text_atomic(cached, "".join(json.dumps({"id": i, "sentences": s}, ensure_ascii=False) + "\n" for i, s in out))
    return out


def _unit_hash(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0x100000000


def document_split(doc_id: str, held_out_fraction: float, dev_fraction: float) -> Split:
    """A stable, seed-free assignment by document id: ``held_out_fraction`` of all documents are
    held out; ``dev_fraction`` of the remaining ones form the dev slice (an independent hash)."""
    if _unit_hash(doc_id) < held_out_fraction:
        return "held-out"
    return "dev" if _unit_hash("dev:" + doc_id) < dev_fraction else "train"


def make_examples(documents: Iterable[SourceDocument], prefix_sentences: int = 3, suffix_sentences: int = 1,
                  in_doc_negatives: int = 2, examples_per_document: int = 1, seed: int = 0) -> list[Example]:
    """Up to ``examples_per_document`` (prefix, continuation) cuts per document, at sentence boundaries.

    A document needs room for the prefix, the continuation and ``in_doc_negatives`` non-overlapping
    continuations elsewhere (the prefix's own sentences included: repeating the prefix is a typical LM
    error); shorter documents are skipped. A document's cuts depend only on ``seed`` and its id.
    """
    examples = []
    for doc in documents:
        rng = random.Random(f"{seed}:{doc.id}")
        s = doc.sentences
        cuts = list(range(prefix_sentences, len(s) - suffix_sentences + 1))
        rng.shuffle(cuts)
        for cut in cuts[:examples_per_document]:
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
                in_doc_negatives=tuple(" ".join(s[i:i + suffix_sentences]) for i in chosen),
            ))
    return examples


def split_documents(documents: Sequence[SourceDocument], held_out_fraction: float, dev_fraction: float
                    ) -> dict[Split, list[SourceDocument]]:
    out: dict[Split, list[SourceDocument]] = {"train": [], "dev": [], "held-out": []}
    for doc in documents:
        out[document_split(doc.id, held_out_fraction, dev_fraction)].append(doc)
    return out
