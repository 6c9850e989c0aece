"""The CLI: one JSON object as the last stdout line, and one-line errors with exit code 2."""
import json

import numpy as np
import pytest

from embedkit.cli.main import main
from helpers import write_beir, write_stsb


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_eval_sts_prints_json_last(tiny_model_dir, tmp_path, capsys):
    path = write_stsb(tmp_path / "sts-test.csv")
    assert main(["eval", "sts", "--model", str(tiny_model_dir), "--data", str(path)]) == 0
    result = last_json(capsys)
    assert result["n_pairs"] == 8
    assert -100 <= result["spearman"] <= 100 and -100 <= result["pearson"] <= 100


def test_eval_retrieval_prints_json_last(tiny_model_dir, tmp_path, capsys):
    folder = write_beir(tmp_path / "beir")
    assert main(["eval", "retrieval", "--model", str(tiny_model_dir), "--data", str(folder)]) == 0
    result = last_json(capsys)
    assert set(result) >= {"ndcg@10", "mrr@10", "map@10", "recall@10", "recall@100", "n_queries"}
    assert result["n_queries"] == 3
    assert result["recall@100"] == pytest.approx(100.0)  # 6 documents: every relevant one is in the top 100


def test_encode_writes_rows_in_order(tiny_model, tiny_model_dir, tmp_path, capsys):
    texts = ["first line", "a much longer second line with more words in it", "", "third"]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out.npy"
    assert main(["encode", "--model", str(tiny_model_dir), "--input", str(tmp_path / "in.txt"), "--out", str(out),
                 "--backend", "torch"]) == 0
    emb = np.load(out)
    assert emb.dtype == np.float32 and emb.shape[0] == 4
    expected = tiny_model.encode(texts, convert_to_numpy=True)
    np.testing.assert_allclose(emb, expected, atol=1e-5)


@pytest.mark.parametrize("argv, fragment", [
    (["eval", "sts", "--data", "no/such/file.csv"], "no/such/file.csv"),
    (["eval", "retrieval", "--data", "no/such/beir"], "no/such/beir"),
    (["encode", "--input", "missing.txt", "--out", "x.npy"], "missing.txt"),
])
def test_bad_input_is_one_line_and_exit_2(argv, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EMBEDKIT_DATA", str(tmp_path))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("embedkit: error:") and fragment in err and "\n" not in err and "Traceback" not in err


def test_not_a_model_folder(tmp_path, capsys):
    path = write_stsb(tmp_path / "sts-test.csv")
    (tmp_path / "empty_model").mkdir()
    assert main(["eval", "sts", "--model", str(tmp_path / "empty_model"), "--data", str(path)]) == 2
    assert "not a model folder" in capsys.readouterr().err


def test_malformed_sts_line_names_file_and_line(tmp_path, capsys):
    path = write_stsb(tmp_path / "sts-test.csv")
    with open(path, "a", encoding="utf-8") as f:
        f.write("main-news\tfile\t2012\t0099\tnot-a-number\ta\tb\n")
    assert main(["eval", "sts", "--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert "sts-test.csv" in err and "line 9" in err


def test_cache_info_and_clear(tiny_model_dir, tmp_path, capsys):
    """``cache info`` counts every byte under EMBEDKIT_CACHE (the embeddings, mteb's cache, the demo index...);
    ``cache clear`` empties everything embedkit wrote there and leaves what it did not write."""
    import os

    from embedkit.paths import cache_dir

    path = write_stsb(tmp_path / "sts-test.csv")
    main(["eval", "sts", "--model", str(tiny_model_dir), "--data", str(path)])
    root = cache_dir()
    for part, size in (("demo-index", 3_000_000), ("mteb", 1_000_000)):  # as `embedkit demo` and mteb leave them
        (root / part).mkdir(exist_ok=True)
        (root / part / "some-file").write_bytes(b"x" * size)
    (root / "mine").mkdir()
    (root / "mine" / "notes.txt").write_bytes(b"y" * 200_000)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)
    capsys.readouterr()
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert f"size     {total / 1e6:.1f} MB" in out
    assert {line.split()[0] for line in out.splitlines()[4:]} >= {"embeddings", "mteb", "demo-index", "mine"}
    assert main(["cache", "clear"]) == 0
    assert "left alone (not written by embedkit): mine" in capsys.readouterr().out
    assert sorted(p.name for p in root.iterdir()) == ["mine"]
    main(["cache", "info"])
    assert "size     0.2 MB" in capsys.readouterr().out


def test_every_cache_folder_is_known_to_cache_clear():
    """A new folder under ``cache_dir()`` must be added to ``paths.CACHE_PARTS``, or ``cache clear`` would leave it."""
    import re
    from pathlib import Path

    from embedkit.paths import CACHE_PARTS

    package = Path(__file__).resolve().parents[2] / "embedkit"
    used = {m for f in package.rglob("*.py") for m in re.findall(r'cache_dir\(\)\s*/\s*"([^"]+)"', f.read_text())}
    assert used and used <= set(CACHE_PARTS)


def test_domain_on_a_model_without_experts_is_one_line(tiny_model_dir, tmp_path, capsys):
    path = write_stsb(tmp_path / "sts-test.csv")
    assert main(["eval", "sts", "--model", str(tiny_model_dir), "--data", str(path), "--domain", "science"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("embedkit: error:") and "science" in err


def test_moe_folder_loads_and_domain_routes_encode(tiny_model, tmp_path, capsys):
    """A saved MoE model is a plain folder for load_model; --domain picks the experts that encode."""
    import torch

    from embedkit.modules import to_moe

    moe = to_moe(tiny_model, ["science", "news"])
    with torch.no_grad():  # make the experts differ, as training would
        for name, param in moe.named_parameters():
            if "experts" in name and ".1." in name:
                param.add_(0.5)
    moe.save(str(tmp_path / "moe"))
    (tmp_path / "in.txt").write_text("a sentence\nanother sentence\n", encoding="utf-8")
    outputs = {}
    for domain in ("science", "news"):
        out = tmp_path / f"{domain}.npy"
        assert main(["encode", "--model", str(tmp_path / "moe"), "--input", str(tmp_path / "in.txt"),
                     "--out", str(out), "--domain", domain]) == 0
        outputs[domain] = np.load(out)
    assert not np.allclose(outputs["science"], outputs["news"])
