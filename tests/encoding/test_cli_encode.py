"""``embedkit encode`` with the new options: backend, streaming with resume, errors."""
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


def test_bad_options_are_one_line_errors(tiny_model_dir, tmp_path, capsys):
    corpus = tmp_path / "in.txt"
    corpus.write_text("a\nb\n", encoding="utf-8")
    base = ["encode", "--model", str(tiny_model_dir), "--input", str(corpus), "--out", str(tmp_path / "o.npy")]
    for extra, message in ((["--workers", "0"], "--workers must be >= 1"),
                           (["--max-seq-length", "0"], "--max-seq-length must be >= 1"),
                           (["--ray", "--workers", "2"], "--workers is a single-machine option"),
                           (["--rows-per-part", "16"], "--rows-per-part goes with --ray")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("embedkit: error:") and message in err and "\n" not in err
    with pytest.raises(SystemExit) as info:  # argparse's own one-line error
        main(["encode", "--out", str(tmp_path / "o.npy")])
    assert info.value.code == 2 and "the following arguments are required: --input" in capsys.readouterr().err
