"""Streaming encode: same rows as the in-memory engine, resumes to a byte-identical file, shards merge."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import embedkit.encoding.stream as stream_module
from embedkit.encoding import encode, encode_file, encode_file_parallel, merge_npy, shard_range
from embedkit.errors import DataError
from embedkit.models import load_model

from encoding.encoding_helpers import min_cosine


@pytest.fixture()
def corpus(tmp_path, texts) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


def test_stream_equals_in_memory(tiny_model, corpus, texts, tmp_path):
    result = encode_file(tiny_model, corpus, tmp_path / "out.npy", window=40, batch_size=8, show_progress=False)
    out = np.load(result.path)
    assert out.shape == (len(texts), 32) and result.rows == len(texts)
    assert min_cosine(out, encode(tiny_model, texts, batch_size=8)) >= 0.9999
    assert not (tmp_path / "out.npy.partial").exists() and not (tmp_path / "out.npy.partial.json").exists()


def test_resume_after_interruption_gives_the_same_file(tiny_model, corpus, tmp_path, monkeypatch):
    whole = encode_file(tiny_model, corpus, tmp_path / "whole.npy", window=40, show_progress=False).path

    real = stream_module.encode_into
    calls = []

    def dies_in_third_window(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # the width probe, then windows 1 and 2 succeed
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(stream_module, "encode_into", dies_in_third_window)
    out = tmp_path / "resumed.npy"
    with pytest.raises(KeyboardInterrupt):
        encode_file(tiny_model, corpus, out, window=40, show_progress=False)
    state = json.loads((tmp_path / "resumed.npy.partial.json").read_text())
    assert state["done"] == 2 and not out.exists()

    monkeypatch.setattr(stream_module, "encode_into", real)
    result = encode_file(tiny_model, corpus, out, window=40, show_progress=False)
    assert result.resumed_windows == 2
    assert out.read_bytes() == whole.read_bytes()


def test_changed_options_start_over(tiny_model, corpus, tmp_path):
    out = tmp_path / "out.npy"
    (tmp_path / "out.npy.partial.json").write_text(json.dumps({"identity": {"other": 1}, "done": 3}))
    result = encode_file(tiny_model, corpus, out, window=40, show_progress=False, normalize=True)
    assert result.resumed_windows == 0
    assert np.allclose(np.linalg.norm(np.load(out), axis=1), 1, atol=1e-5)


def test_line_ranges_and_errors(tiny_model, corpus, texts, tmp_path):
    part = encode_file(tiny_model, corpus, tmp_path / "part.npy", start=10, stop=25, show_progress=False)
    assert min_cosine(np.load(part.path), encode(tiny_model, texts[10:25])) >= 0.9999
    with pytest.raises(DataError, match="no lines"):
        encode_file(tiny_model, corpus, tmp_path / "none.npy", start=500, show_progress=False)


def test_shard_ranges_cover_the_file():
    ranges = [shard_range(10, 3, i) for i in range(3)]
    assert ranges == [(0, 4), (4, 7), (7, 10)]
    with pytest.raises(ValueError):
        shard_range(10, 3, 3)


def test_merge_npy(tmp_path):
    a, b = np.arange(6, dtype=np.float32).reshape(3, 2), np.ones((2, 2), dtype=np.float32)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    assert merge_npy([tmp_path / "a.npy", tmp_path / "b.npy"], tmp_path / "ab.npy") == (5, 2)
    assert np.array_equal(np.load(tmp_path / "ab.npy"), np.concatenate([a, b]))
    np.save(tmp_path / "c.npy", np.ones((2, 3), dtype=np.float32))
    with pytest.raises(DataError, match="different widths"):
        merge_npy([tmp_path / "a.npy", tmp_path / "c.npy"], tmp_path / "bad.npy")


def test_parallel_processes_match_the_engine(tiny_model_dir, tiny_model, corpus, texts, tmp_path):
    out = tmp_path / "par.npy"
    assert encode_file_parallel(str(tiny_model_dir), corpus, out, processes=2, window=50) == (len(texts), 32)
    assert min_cosine(np.load(out), encode(tiny_model, texts)) >= 0.9999
    assert not (tmp_path / "par.npy.shards").exists()  # shards are removed once merged


def test_finished_shard_is_not_redone(tiny_model_dir, corpus, tmp_path):
    from embedkit.encoding.shards import ShardJob, _run_shard
    from embedkit.encoding.stream import scan_input

    options = {"role": None, "prompt": None, "batch_size": 8, "normalize": False, "backend": "torch", "window": 50}
    job = ShardJob(str(tiny_model_dir), str(corpus), str(tmp_path / "shard.npy"), 0, 60, "cpu", 1, options,
                   scan_input(corpus))
    first = Path(_run_shard(job))
    stamp = first.stat().st_mtime_ns
    assert _run_shard(job) == str(first) and first.stat().st_mtime_ns == stamp
    changed = ShardJob(**{**job.__dict__, "options": {**options, "normalize": True}})
    _run_shard(changed)  # other options: encoded again
    assert np.allclose(np.linalg.norm(np.load(first), axis=1), 1, atol=1e-5)
    _run_shard(ShardJob(**{**job.__dict__, "max_seq_length": 4}))  # a token limit changes the model: again
    cut = load_model(str(tiny_model_dir), max_seq_length=4)
    assert min_cosine(np.load(first), encode(cut, corpus.read_text(encoding="utf-8").splitlines()[:60])) >= 0.9999
