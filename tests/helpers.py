"""Helpers tests import by name (conftest modules cannot be imported reliably: each folder has one)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

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


def make_tiny_model_dir(path: Path, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    """Write a randomly initialised BERT (sentence-transformers layout, mean pooling) to ``path``."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from embedkit.models import default_model_path

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(default_model_path()))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=128)
    hf_dir = path / "hf"
    BertModel(config).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    transformer = models.Transformer(str(hf_dir), max_seq_length=64)
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean")
    st_dir = path / "st"
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(st_dir))
    return st_dir


def load_script(relative: str):
    """A script of the repository that is not in a package (``results/<area>/tables.py``), as a module."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.parent.name + "_" + path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
