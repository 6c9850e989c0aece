"""``embedkit encode`` with the new options: backend, streaming with resume, shards and merge, errors."""
from __future__ import annotations

import numpy as np
import pytest

from embedkit.cli.main import main
from embedkit.encoding import encode
from embedkit.models import load_model

from encoding.encoding_helpers import min_cosine


def test_encode_backends_and_stream(tiny_model_dir, tiny_model, tmp_path, texts, capsys):
    corpus = tmp_path / "in.txt"
    corpus.write_text("\n".join(texts), encoding="utf-8")
    reference = encode(tiny_model, texts)
    assert main(["encode", "--model", str(tiny_model_dir), "--input", str(corpus), "--out", str(tmp_path / "a.npy"),
                 "--backend", "int8"]) == 0
    assert min_cosine(np.load(tmp_path / "a.npy"), reference) > 0.9
    assert main(["encode", "--model", str(tiny_model_dir), "--input", str(corpus), "--out", str(tmp_path / "s.npy"),
                 "--window", "50", "--workers", "2", "--threads", "1", "--backend", "torch"]) == 0
    assert min_cosine(np.load(tmp_path / "s.npy"), reference) >= 0.9999
    assert main(["encode", "--model", str(tiny_model_dir), "--input", str(corpus), "--out", str(tmp_path / "c.npy"),
                 "--max-seq-length", "4", "--backend", "torch"]) == 0
    cut = np.load(tmp_path / "c.npy")
    assert min_cosine(cut, encode(load_model(str(tiny_model_dir), max_seq_length=4), texts)) >= 0.9999
    assert min_cosine(cut, reference) < 0.99  # the limit was applied, not ignored


def test_shards_then_merge(tiny_model_dir, tiny_model, tmp_path, texts):
    corpus = tmp_path / "in.txt"
    corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
    parts = []
    for index in range(3):
        parts.append(str(tmp_path / f"part{index}.npy"))
        assert main(["encode", "--model", str(tiny_model_dir), "--input", str(corpus), "--out", parts[-1],
                     "--num-shards", "3", "--shard-index", str(index), "--backend", "torch"]) == 0
    assert main(["encode", "--out", str(tmp_path / "all.npy"), "--merge", *parts]) == 0
    assert min_cosine(np.load(tmp_path / "all.npy"), encode(tiny_model, texts)) >= 0.9999


def test_bad_options_are_one_line_errors(tiny_model_dir, tmp_path, capsys):
    corpus = tmp_path / "in.txt"
    corpus.write_text("a\nb\n", encoding="utf-8")
    base = ["encode", "--model", str(tiny_model_dir), "--input", str(corpus), "--out", str(tmp_path / "o.npy")]
    for extra, message in ((["--num-shards", "2"], "go together"),
                           (["--num-shards", "2", "--shard-index", "2"], "--shard-index must be"),
                           (["--workers", "0"], "--workers must be >= 1"),
                           (["--max-seq-length", "0"], "--max-seq-length must be >= 1"),
                           (["--processes", "2", "--num-shards", "2", "--shard-index", "0"], "leave out")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("embedkit: error:") and message in err and "\n" not in err
    with pytest.raises(SystemExit) as info:  # argparse: --input and --merge are one required group
        main(["encode", "--out", str(tmp_path / "o.npy")])
    assert info.value.code == 2 and "one of the arguments --input --merge is required" in capsys.readouterr().err
