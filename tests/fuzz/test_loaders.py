"""Fuzzing every loader with generated input: STS, BEIR, document streams, pairs and triplets, sentence
files, training recipes, index folders (manifest, document tables, BM25 and FAISS files), query files.

Inputs are valid files mutated by hypothesis (truncation, random and invalid UTF-8 bytes, UTF-16, huge
lines, NaN / infinite / out-of-range numbers, duplicated and dropped lines, deep nesting, random bytes).
The promise checked on every example: the loader returns good data or raises an ``EmbedkitError`` whose
message is one line naming the file; no other exception escapes. Each failure is also run through the
CLI command that reads such a file: exit status 2 and exactly one ``embedkit: error:`` line.

Examples per loader: ``EMBEDKIT_FUZZ_EXAMPLES`` (default 40, derandomized so CI is repeatable);
``EMBEDKIT_FUZZ_RANDOM=1`` draws fresh examples (benchmarks/reliability_bench.py runs thousands).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedkit.errors import EmbedkitError
from helpers import DOCS, QUERIES, QRELS, STS_ROWS, write_beir, write_stsb

EXAMPLES = int(os.environ.get("EMBEDKIT_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize=not os.environ.get("EMBEDKIT_FUZZ_RANDOM"),
                suppress_health_check=list(HealthCheck))
TALLY: Counter = Counter()  # examples run per loader, written to EMBEDKIT_FUZZ_TALLY (the benchmark reads it)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _write_tally():
    yield
    if os.environ.get("EMBEDKIT_FUZZ_TALLY"):
        Path(os.environ["EMBEDKIT_FUZZ_TALLY"]).write_text(json.dumps(dict(TALLY)))


# ------------------------------------------------------------------------------------------- mutations

_NUMBER = re.compile(rb"-?\d+(\.\d+)?([eE][-+]?\d+)?")
SPECIAL = [b"NaN", b"nan", b"inf", b"-Infinity", b"1e999", b"-0", b"", b"null", b"true", b"\x00", b'"', b"\t", b",",
           b"\r", b"\n", b"\n\n", b"{", b"}", b"[" * 3000, b"\xef\xbb\xbf", b"\xe2\x80\xa8", b"'", b"\\", b"&a *a",
           b":", b"- ", b"!!python/object:os.system", b"\xf0\x9f\x98\x80"]
MUTATION = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=12)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.sampled_from(SPECIAL)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"])),
    st.tuples(st.just("number"), st.floats(0, 1), st.sampled_from([b"NaN", b"inf", b"-inf", b"1e400", b"-1", b"x",
                                                                   b"", b"3.5.1", b"99999999999999999999"])),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("huge_line"), st.floats(0, 1)),
    st.tuples(st.just("duplicate_line"), st.floats(0, 1)),
    st.tuples(st.just("drop_line"), st.floats(0, 1)),
    st.tuples(st.just("utf16")),
    st.tuples(st.just("random"), st.binary(max_size=300)),
)
MUTATIONS = st.lists(MUTATION, min_size=1, max_size=4)


def mutate(data: bytes, mutations) -> bytes:
    for m in mutations:
        kind, at = m[0], (m[1] if len(m) > 1 and isinstance(m[1], float) else 0.0)
        pos = int(at * len(data))
        if kind == "truncate":
            data = data[:pos]
        elif kind == "insert":
            data = data[:pos] + m[2] + data[pos:]
        elif kind == "number":
            numbers = list(_NUMBER.finditer(data))
            if numbers:
                n = numbers[min(int(at * len(numbers)), len(numbers) - 1)]
                data = data[:n.start()] + m[2] + data[n.end():]
        elif kind == "flip" and data:
            pos = min(pos, len(data) - 1)
            data = data[:pos] + bytes([data[pos] ^ m[2]]) + data[pos + 1:]
        elif kind == "huge_line":
            data = data[:pos] + b"x" * 300_000 + data[pos:]
        elif kind in ("duplicate_line", "drop_line"):
            lines = data.split(b"\n")
            i = min(int(at * len(lines)), len(lines) - 1)
            lines[i:i + 1] = [lines[i]] * (2 if kind == "duplicate_line" else 0)
            data = b"\n".join(lines)
        elif kind == "utf16":
            data = data.decode("utf-8", "replace").encode("utf-16")
        elif kind == "random":
            data = m[1]
    return data


# ------------------------------------------------------------------------------------------- checks


def clean(call, *names: str):
    """``call()``'s result, or None when it raised an EmbedkitError of one line naming one of ``names``."""
    try:
        return call()
    except EmbedkitError as exc:
        message = str(exc)
        assert message.strip() and "\n" not in message and "\r" not in message, repr(message)
        assert any(name in message for name in names), f"{message!r} names none of {names}"
        return None


def cli(argv: list[str], expect: set[int] = frozenset({2})) -> int:
    """Run the real CLI entry point in-process; a failure is exit 2 with one ``embedkit: error:`` line."""
    from embedkit.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    lines = err.getvalue().strip().split("\n")  # (a terminal's lines: str.splitlines also splits at \x1c-\x1e)
    assert code in expect, (code, err.getvalue())
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("embedkit: error: "), err.getvalue()
    return code


@contextlib.contextmanager
def scratch():
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def finite(values) -> bool:
    return all(math.isfinite(v) for v in values)


# ------------------------------------------------------------------------------------------- data loaders

STS_SEEDS = {
    "sts-dev.csv": None,  # written by helpers.write_stsb
    "pairs.csv": "sentence1,sentence2,score\n" + "".join(f'"{a}","{b}",{s}\n' for _, a, b, s in STS_ROWS),
    "pairs.tsv": "sentence1\tsentence2\tscore\tgenre\n" + "".join(f"{a}\t{b}\t{s}\t{g}\n" for g, a, b, s in STS_ROWS),
    "pairs.jsonl": "".join(json.dumps({"sentence1": a, "sentence2": b, "score": s}) + "\n" for _, a, b, s in STS_ROWS),
    "SICK.txt": "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tSemEval_set\n"
                + "".join(f"{i}\t{a}\t{b}\t{s}\tTEST\n" for i, (_, a, b, s) in enumerate(STS_ROWS)),
}


def seed_bytes(folder: Path, name: str) -> bytes:
    if STS_SEEDS[name] is None:
        return write_stsb(folder / name).read_bytes()
    return STS_SEEDS[name].encode()


@FUZZ
@given(name=st.sampled_from(sorted(STS_SEEDS)), mutations=MUTATIONS)
def test_sts_files(name, mutations):
    from embedkit.data import load_sts

    TALLY["sts"] += 1
    with scratch() as folder:
        path = folder / name
        path.write_bytes(mutate(seed_bytes(folder, name), mutations))
        dataset = clean(lambda: load_sts(path), name)
        if dataset is None:
            cli(["eval", "sts", "--data", str(path)])
        else:
            assert finite(dataset.scores) and all(isinstance(p.sentence1, str) for p in dataset.pairs)


@FUZZ
@given(which=st.sampled_from(["input", "gold"]), mutations=MUTATIONS)
def test_senteval_folders(which, mutations):
    from embedkit.data import load_sts

    TALLY["senteval"] += 1
    with scratch() as folder:
        (folder / "STS.input.news.txt").write_text("".join(f"{a}\t{b}\n" for _, a, b, _ in STS_ROWS))
        (folder / "STS.gs.news.txt").write_text("".join(f"{s}\n" for *_, s in STS_ROWS))
        path = folder / ("STS.input.news.txt" if which == "input" else "STS.gs.news.txt")
        path.write_bytes(mutate(path.read_bytes(), mutations))
        dataset = clean(lambda: load_sts(folder), path.name, folder.name)
        if dataset is None:
            cli(["eval", "sts", "--data", str(folder)])
        else:
            assert finite(dataset.scores)


@FUZZ
@given(which=st.sampled_from(["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"]), mutations=MUTATIONS)
def test_beir_folders(which, mutations):
    from embedkit.data import load_beir

    TALLY["beir"] += 1
    with scratch() as folder:
        write_beir(folder, DOCS, QUERIES, QRELS)
        path = folder / which
        path.write_bytes(mutate(path.read_bytes(), mutations))
        data = clean(lambda: load_beir(folder), Path(which).name, folder.name)
        if data is None:
            cli(["eval", "retrieval", "--data", str(folder)])
        else:
            assert all(q in data.queries and set(d) <= set(data.corpus) for q, d in data.qrels.items())
            assert all(finite(d.values()) for d in data.qrels.values())


@FUZZ
@given(name=st.sampled_from(["corpus.jsonl", "docs.txt"]), mutations=MUTATIONS)
def test_document_streams(name, mutations):
    from embedkit.data import count_documents, iter_documents

    TALLY["documents"] += 1
    with scratch() as folder:
        path = folder / name
        if name.endswith(".jsonl"):
            seed = write_beir(folder / "b", DOCS, QUERIES, QRELS).joinpath("corpus.jsonl").read_bytes()
        else:
            seed = "".join(f"{title}. {text}\n" for title, text in DOCS.values()).encode()
        path.write_bytes(mutate(seed, mutations))
        docs = clean(lambda: list(iter_documents(path)), name)
        if docs is not None:
            assert len(docs) == count_documents(path) and all(d.id and isinstance(d.text, str) for d in docs)


PAIR_SEEDS = {
    "nli.csv": "sent0,sent1,hard_neg\n" + "".join(f'"{a}","{b}","{c}"\n' for _, a, b, c in
                                                   [(0, r[1], r[2], STS_ROWS[-1 - i][1]) for i, r in enumerate(STS_ROWS)]),
    "pairs.tsv": "anchor\tpositive\n" + "".join(f"{a}\t{b}\n" for _, a, b, _ in STS_ROWS),
    "triplets.jsonl": "".join(json.dumps({"anchor": a, "positive": b, "negative": "x"}) + "\n" for _, a, b, _ in STS_ROWS),
}


@FUZZ
@given(name=st.sampled_from(sorted(PAIR_SEEDS)), mutations=MUTATIONS)
def test_pairs_and_triplets(name, mutations):
    from embedkit.data import load_pairs, load_triplets

    TALLY["pairs"] += 1
    with scratch() as folder:
        path = folder / name
        path.write_bytes(mutate(PAIR_SEEDS[name].encode(), mutations))
        triplets = clean(lambda: load_triplets(path), name)
        if triplets is not None:
            assert all(isinstance(t.anchor, str) and isinstance(t.positive, str) for t in triplets)
            assert len(load_pairs(path)) == len(triplets)


@FUZZ
@given(mutations=MUTATIONS)
def test_sentence_files(mutations):
    from embedkit.data import load_sentences, read_lines

    TALLY["sentences"] += 1
    with scratch() as folder:
        path = folder / "sentences.txt"
        path.write_bytes(mutate("".join(f"{a}\n" for _, a, _, _ in STS_ROWS).encode(), mutations))
        lines = clean(lambda: read_lines(path), path.name)
        if lines is None:
            cli(["encode", "--input", str(path), "--out", str(folder / "out.npy")])
        else:
            sentences = clean(lambda: load_sentences(path), path.name)
            assert sentences is None or all(s.strip() for s in sentences)


# ------------------------------------------------------------------------------------------- recipes

RECIPES = sorted((ROOT / "training").glob("*.yaml"))


def _scalars():
    return st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                     st.text(max_size=20), st.sampled_from([".nan", ".inf", "-.inf", "1e999", "10:60", "yes"]))


VALUES = st.recursive(_scalars(), lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=8)


@FUZZ
@given(recipe=st.sampled_from(RECIPES), mutations=st.lists(MUTATION, max_size=3),
       override=st.one_of(st.none(), st.tuples(st.sampled_from(["loss.temperature", "learning_rate", "batch_size",
                                                                "data", "eval.sets.0.split", "params", "max_steps",
                                                                "data.hard_negatives.range", "zzz"]), VALUES)))
def test_recipes(recipe, mutations, override):
    import yaml

    from embedkit.training.recipe import load_recipe

    TALLY["recipes"] += 1
    with scratch() as folder:
        path = folder / recipe.name
        text = recipe.read_bytes()
        if override is not None:  # a structural change: one key set to a generated value
            raw = yaml.safe_load(text)
            node, keys = raw, override[0].split(".")
            for key in keys[:-1]:
                node = node.setdefault(key, {}) if isinstance(node, dict) else node
                node = node[int(key)] if isinstance(node, list) and key.isdigit() and int(key) < len(node) else node
            if isinstance(node, dict):
                node[keys[-1]] = override[1]
            text = yaml.safe_dump(raw, allow_unicode=True).encode("utf-8", "surrogatepass")
        path.write_bytes(mutate(text, mutations) if mutations else text)
        loaded = clean(lambda: load_recipe(path), recipe.name)
        if loaded is None:
            cli(["train", str(path)])
        else:
            floats = [v for v in _leaves(loaded.model_dump()) if isinstance(v, float)]
            assert finite(floats), "a recipe loaded with a NaN or infinite number"


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


# ------------------------------------------------------------------------------------------- index folders


@pytest.fixture(scope="module")
def index_folder(tmp_path_factory) -> Path:
    from embedkit.data import Document
    from embedkit.index import BM25Index, FaissIndex, IndexFolder

    rng = np.random.default_rng(0)
    docs = [Document(i, title, text) for i, (title, text) in DOCS.items()]
    out = {}
    for spec in ("Flat", "HNSW16"):
        index = FaissIndex(8, spec)
        index.add([d.id for d in docs], rng.standard_normal((len(docs), 8)).astype(np.float32),
                   texts=[d.text for d in docs], titles=[d.title for d in docs])
        index.remove([docs[0].id])  # HNSW keeps a deleted-labels file
        folder = tmp_path_factory.mktemp("ix") / spec
        IndexFolder(index, BM25Index.from_documents(docs[1:])).save(folder)
        out[spec] = folder
    return out


def _set_path(obj, path: list, value):
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def _paths(obj, prefix=()):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield prefix + (key,)
            yield from _paths(value, prefix + (key,))


def check_index(folder: Path) -> None:
    from embedkit.index import FaissIndex, IndexFolder

    names = (folder.name, "meta.json")
    state = clean(lambda: IndexFolder.load(folder), *names)
    clean(lambda: FaissIndex.load(folder, mmap=True, verify=True), *names)
    problems = IndexFolder.verify(folder)
    assert all("\n" not in p and folder.name in p for p in problems), problems
    assert state is not None or problems  # whatever stops a load, verify reports (it also checks unused files)
    cli(["index", "info", str(folder)], expect={0} if state else {2})
    cli(["index", "verify", str(folder)], expect={1} if problems else {0})


@FUZZ
@given(spec=st.sampled_from(["Flat", "HNSW16"]), mutations=st.lists(MUTATION, max_size=3),
       change=st.one_of(st.none(), st.tuples(st.integers(0, 200), VALUES)))
def test_index_manifests(index_folder, spec, mutations, change):
    TALLY["index manifests"] += 1
    with scratch() as root:
        folder = shutil.copytree(index_folder[spec], root / "ix")
        meta_path = folder / "meta.json"
        if change is not None:  # a field set to a generated value, then the bytes mutated
            meta = json.loads(meta_path.read_text())
            paths = list(_paths(meta))
            _set_path(meta, list(paths[change[0] % len(paths)]), change[1])
            meta_path.write_text(json.dumps(meta))
        meta_path.write_bytes(mutate(meta_path.read_bytes(), mutations))
        check_index(folder)


@FUZZ
@given(spec=st.sampled_from(["Flat", "HNSW16"]), role=st.sampled_from(["docs", "deleted", "bm25docs", "vocab",
                                                                       "params", "data", "indptr", "faiss"]),
       mutations=MUTATIONS, consistent=st.booleans())
def test_index_data_files(index_folder, spec, role, mutations, consistent):
    """A damaged data file; ``consistent``: its manifest record rewritten to match (damage a checksum cannot
    see, as a writer's bug would make) for the files embedkit parses itself (FAISS parses its own file,
    which is why every file is checksummed before it is read)."""
    TALLY["index data files"] += 1
    with scratch() as root:
        folder = shutil.copytree(index_folder[spec], root / "ix")
        meta = json.loads((folder / "meta.json").read_text())
        roles = {**meta["roles"], **{k if k != "docs" else "bm25docs": v for k, v in meta["bm25"]["roles"].items()}}
        if role not in roles:
            return
        path = folder / roles[role]
        data = mutate(path.read_bytes(), mutations)
        path.write_bytes(data)
        if consistent and role != "faiss":
            meta["files"][path.name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            (folder / "meta.json").write_text(json.dumps(meta))
        check_index(folder)


@FUZZ
@given(name=st.sampled_from(["queries.jsonl", "queries.txt"]), mutations=MUTATIONS)
def test_query_files(name, mutations):
    from embedkit.cli.index import _read_queries

    TALLY["query files"] += 1
    with scratch() as folder:
        path = folder / name
        seed = write_beir(folder / "b", DOCS, QUERIES, QRELS).joinpath("queries.jsonl").read_bytes()
        path.write_bytes(mutate(seed if name.endswith(".jsonl") else b"how do planes fly\nwhy cats purr\n",
                                mutations))
        queries = clean(lambda: _read_queries(str(path)), name)
        assert queries is None or all(isinstance(q, str) for q in queries)
