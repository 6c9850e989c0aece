"""``embedkit eval retrieval --ray``: the corpus is embedded on the cluster and lands in the embedding cache."""
from __future__ import annotations

import json

import pytest

from helpers import QUERIES, QRELS, write_beir


def run(main, capsys, args) -> dict:
    assert main(args) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_eval_retrieval_on_ray_fills_the_cache(ray_cluster, tiny_model_dir, tmp_path, monkeypatch, capsys):
    import embedkit.encoding.cache as cache_module
    import embedkit.evaluation.encoder as encoder_module
    from embedkit.cli.main import main

    encoded: list[str] = []
    engine = cache_module.encode

    def counting(model, texts, **kwargs):
        encoded.extend(texts)
        return engine(model, texts, **kwargs)

    monkeypatch.setattr(cache_module, "encode", counting)
    monkeypatch.setattr(encoder_module, "encode", counting)  # where texts the cluster lacked would go
    args = ["eval", "retrieval", "--data", str(write_beir(tmp_path / "beir")), "--model", str(tiny_model_dir)]
    on_ray = run(main, capsys, args + ["--ray", ray_cluster])
    judged = {q for q, _ in QRELS}
    assert sorted(encoded) == sorted(QUERIES[q] for q in judged)  # no document was encoded here
    assert not (tmp_path / "embedkit-cache" / "ray-work").exists()  # the texts' folder is cleaned up

    encoded.clear()
    assert run(main, capsys, args) == on_ray
    assert encoded == []  # documents and queries all come from the cache now

    monkeypatch.setenv("EMBEDKIT_CACHE", str(tmp_path / "fresh-cache"))
    local = run(main, capsys, args)  # everything encoded here, from scratch
    assert len(encoded) == len(judged) + 6
    assert local == pytest.approx(on_ray, abs=1e-6)
