"""The typed records every loader returns: scored sentence pairs, BEIR collections, training tuples."""
from __future__ import annotations

from dataclasses import dataclass

# STS-B spells the forum genre ``main-forum`` in its train split and ``main-forums`` in dev and test.
GENRE_ALIASES = {"main-forum": "main-forums"}


def normalize_genre(genre: str | None) -> str | None:
    """The canonical spelling of an STS genre (``main-forum`` -> ``main-forums``); others unchanged."""
    return GENRE_ALIASES.get(genre, genre) if genre is not None else None


def full_text(title: str, text: str) -> str:
    """Title and text joined by a space and stripped, as mteb and sentence-transformers' IR evaluator build
    the document they encode."""
    return (title + " " + text).strip() if title else text.strip()


@dataclass(frozen=True)
class STSPair:
    """Two sentences and their gold similarity score (STS-B 0-5, SICK 1-5, as the file gives it).

    ``genre`` is the raw STS-B genre column (``main-news``, ...), the subset name for a SentEval
    year folder, else None.
    """

    sentence1: str
    sentence2: str
    score: float
    genre: str | None = None


@dataclass(frozen=True)
class STSDataset:
    """Scored pairs from one file or folder.

    ``subsets`` is set for a SentEval STS12-16 year folder: pairs per subset (``headlines``, ...),
    in file-name order; ``pairs`` is then their concatenation, the pooled "all" set SimCSE reports.
    ``source`` is the resolved local path, or ``hub:<id>`` for a hub dataset.
    """

    name: str
    pairs: list[STSPair]
    source: str
    subsets: dict[str, list[STSPair]] | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def sentences1(self) -> list[str]:
        return [p.sentence1 for p in self.pairs]

    @property
    def sentences2(self) -> list[str]:
        return [p.sentence2 for p in self.pairs]

    @property
    def scores(self) -> list[float]:
        return [p.score for p in self.pairs]

    def by_genre(self, normalize: bool = True) -> dict[str, list[STSPair]]:
        """Pairs grouped by genre, in first-seen order; pairs without a genre are left out.

        With ``normalize`` (the default), STS-B's ``main-forum`` and ``main-forums`` form one group.
        """
        groups: dict[str, list[STSPair]] = {}
        for pair in self.pairs:
            if pair.genre is not None:
                key = normalize_genre(pair.genre) if normalize else pair.genre
                groups.setdefault(key, []).append(pair)
        return groups


@dataclass(frozen=True)
class Document:
    """One corpus document. ``title`` is "" where the source has none."""

    id: str
    title: str
    text: str

    @property
    def full_text(self) -> str:
        return full_text(self.title, self.text)


@dataclass(frozen=True)
class BEIRDataset:
    """A retrieval collection for one split.

    ``queries`` holds only the queries that ``qrels`` judges for this split (in ``queries.jsonl``
    order); ``qrels[query_id][doc_id]`` is the graded relevance (0 = judged not relevant).
    """

    corpus: dict[str, Document]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    name: str
    split: str
    source: str = ""


@dataclass(frozen=True)
class Triplet:
    """A training tuple: anchor, positive and an optional hard negative."""

    anchor: str
    positive: str
    negative: str | None = None
