"""Small data files in the real formats, written by tests."""
from __future__ import annotations

import json
from pathlib import Path

STS_ROWS = [
    ("main-news", "A man is playing a guitar.", "A person plays a guitar.", 4.6),
    ("main-news", "A woman is slicing an onion.", "A woman cuts an onion.", 4.2),
    ("main-captions", "The cat sleeps on the sofa.", "A dog runs in the park.", 0.4),
    ("main-captions", "Two kids play football.", "Children are playing soccer.", 4.0),
    ("main-forums", "Stocks fell sharply on Monday.", "Markets dropped at the start of the week.", 3.8),
    ("main-forums", "The recipe needs two eggs.", "The spacecraft reached orbit.", 0.0),
    ("main-news", "He said \"no\" twice.", "He refused two times.", 3.2),
    ("main-news", "A plane is taking off.", "An airplane departs.", 4.8),
]


def write_stsb(path: Path, rows=STS_ROWS) -> Path:
    lines = [f"{g}\tfile\t2012\t{i:04d}\t{s}\t{a}\t{b}" for i, (g, a, b, s) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


DOCS = {
    "d1": ("Guitars", "The guitar is a string instrument played by plucking."),
    "d2": ("Onions", "Onions are vegetables often sliced for cooking."),
    "d3": ("Football", "Football is a team sport played with a ball."),
    "d4": ("Stock markets", "Stock prices fall when investors sell."),
    "d5": ("Aviation", "Airplanes take off from runways at airports."),
    "d6": ("Cats", "Cats sleep for many hours a day."),
}
QUERIES = {"q1": "Which instrument is plucked?", "q2": "How do planes depart?", "q3": "Why do stocks drop?",
           "q4": "unused query"}
QRELS = [("q1", "d1"), ("q2", "d5"), ("q3", "d4")]


def write_beir(folder: Path, docs=DOCS, queries=QUERIES, qrels=QRELS, split: str = "test") -> Path:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
        for doc_id, (title, text) in docs.items():
            f.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        for qid, text in queries.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (folder / "qrels" / f"{split}.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in qrels), encoding="utf-8")
    return folder
