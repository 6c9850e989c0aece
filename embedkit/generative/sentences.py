"""Sentence boundaries with ``pysbd`` (rule-based, abbreviation-aware: "et al.", "e.g.", "Fig. 2",
numbers such as "1.8 microm2/ms" do not end a sentence), shared by document cutting and by sampling
that stops a continuation after its first sentence.
"""
from __future__ import annotations

import re
from functools import lru_cache

# A sentence end followed by the start of the next text: a cheap test that a sentence may have ended,
# confirmed by pysbd (a regex alone would end "Smith et al. (2005) ..." after "al.").
_MAYBE_ENDED = re.compile(r"[.!?][\"')\]]*\s+\S")


@lru_cache(maxsize=1)
def _segmenter():
    import pysbd

    return pysbd.Segmenter(language="en", clean=False, char_span=True)


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text``, stripped, empty ones dropped."""
    return [span.sent.strip() for span in _segmenter().segment(text) if span.sent.strip()]


def first_sentence_end(text: str) -> int | None:
    """Character offset just after the first sentence of ``text`` (trailing space excluded) when that
    sentence is complete, i.e. another sentence has begun after it; ``None`` otherwise."""
    if not _MAYBE_ENDED.search(text.lstrip()):
        return None
    spans = [s for s in _segmenter().segment(text) if s.sent.strip()]
    if len(spans) < 2:
        return None
    return spans[0].start + len(spans[0].sent.rstrip())
