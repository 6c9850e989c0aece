"""The per-CPU fast paths: bf16, OpenVINO, ``auto``'s choice per CPU flags, the static model, cache keys per backend."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedkit.encoding import cached_encode, encode
from embedkit.encoding import auto as auto_module
from embedkit.encoding.auto import candidates, choose
from embedkit.encoding.auto import resolve_backend
from embedkit.encoding.backends import BACKENDS
from embedkit.encoding.cache import _chunk_key
from embedkit.machine import CpuInfo

from encoding.encoding_helpers import min_cosine

AVX2 = CpuInfo("AMD EPYC", 2, ("avx2", "fma"))
AVX512_VNNI = CpuInfo("Intel Xeon (Cascade Lake)", 2, ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni"))
SAPPHIRE_RAPIDS = CpuInfo("Intel Xeon (Sapphire Rapids)", 2, ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni",
                                                               "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"))


def everything(*modules):
    return True


def test_bf16_is_close_to_float32_and_not_float32(tiny_model, texts):
    import torch

    reference = tiny_model.encode(texts)
    out = encode(tiny_model, texts, backend="bf16")
    assert out.dtype == np.float32 and out.shape == reference.shape
    assert min_cosine(out, reference) > 0.99
    assert not np.allclose(out, reference, atol=1e-6)  # really computed in bf16
    assert next(tiny_model.parameters()).dtype == torch.float32  # the model itself is left in float32


@pytest.fixture()
def openvino_calibration(texts, tmp_path, monkeypatch):
    """OpenVINO and NNCF present, and calibration sentences for openvino-int8."""
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    calibration = tmp_path / "calibration.txt"
    calibration.write_text("\n".join(texts[:40]), encoding="utf-8")
    monkeypatch.setenv("EMBEDKIT_CALIBRATION", str(calibration))


def test_openvino_float32_equals_the_model_and_int8_is_close(tiny_model, texts, openvino_calibration):
    reference = tiny_model.encode(texts)
    assert min_cosine(encode(tiny_model, texts, backend="openvino", workers=2), reference) >= 0.9999
    int8 = encode(tiny_model, texts, backend="openvino-int8")
    assert min_cosine(int8, reference) > 0.9 and not np.allclose(int8, reference, atol=1e-5)


def test_alternating_backends_reuse_their_compiled_models(tiny_model, openvino_calibration):
    """auto's calibration alternates the backends; a recompile per call would be timed as their speed."""
    from embedkit.encoding.onnx_backend import onnx_runner
    from embedkit.encoding.openvino_backend import openvino_runner

    first = {b: openvino_runner(tiny_model, b, 1, 1) for b in ("openvino", "openvino-int8")}
    assert {b: openvino_runner(tiny_model, b, 1, 1) for b in first} == first  # same objects, not recompiled
    onnx = {b: onnx_runner(tiny_model, b, 1) for b in ("onnx", "onnx-int8")}
    assert {b: onnx_runner(tiny_model, b, 1) for b in onnx} == onnx
    import torch

    with torch.no_grad():  # new weights: the runners of the old ones are dropped, not reused
        next(tiny_model.parameters()).add_(0.01)
    assert openvino_runner(tiny_model, "openvino", 1, 1) is not first["openvino"]


def test_openvino_int8_runs_its_float_ops_in_bf16_only_on_bf16_hardware(tiny_model, openvino_calibration,
                                                                         monkeypatch):
    import embedkit.machine as machine
    from embedkit.encoding.backends import embedding_variant
    from embedkit.encoding.openvino_backend import int8_precision, openvino_runner

    here = machine.cpu_info()
    variants = {}
    for cpu in (AVX512_VNNI, SAPPHIRE_RAPIDS):
        monkeypatch.setattr(machine, "cpu_info", lambda cpu=cpu: cpu)
        variants[cpu] = embedding_variant("openvino-int8")
    # the precision is part of the embeddings' identity: a cache never serves one for the other
    assert variants[AVX512_VNNI].endswith("-f32") and variants[SAPPHIRE_RAPIDS].endswith("-bf16")
    monkeypatch.setattr(machine, "cpu_info", lambda: here)
    compiled = {b: openvino_runner(tiny_model, b, 1, 1).compiled for b in ("openvino", "openvino-int8")}
    hint = {b: c.get_property("INFERENCE_PRECISION_HINT").get_type_name() for b, c in compiled.items()}
    assert hint["openvino"] == "f32"  # the exact backend stays float32 on every CPU
    assert int8_precision() == ("bf16" if here.bf16 else "f32") == hint["openvino-int8"]


def test_openvino_int8_without_calibration_sentences_is_a_config_error(tiny_model, tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    from embedkit.errors import ConfigError

    monkeypatch.setenv("EMBEDKIT_CALIBRATION", str(tmp_path / "missing.txt"))
    with pytest.raises(ConfigError, match="EMBEDKIT_CALIBRATION"):
        encode(tiny_model, ["a"], backend="openvino-int8")


@pytest.mark.parametrize("cpu, device, expected", [
    (AVX2, "cpu", ["torch", "openvino", "onnx-int8", "openvino-int8"]),  # no bf16 hardware: bf16 not tried
    (AVX512_VNNI, "cpu", ["torch", "openvino", "onnx-int8", "openvino-int8"]),
    (SAPPHIRE_RAPIDS, "cpu", ["torch", "bf16", "openvino", "onnx-int8", "openvino-int8"]),
    (CpuInfo("Cooper Lake", 2, ("avx2", "avx512f", "avx512_bf16")), "cpu",
     ["torch", "bf16", "openvino", "onnx-int8", "openvino-int8"]),
    (SAPPHIRE_RAPIDS, "cuda", ["torch"]),
])
def test_auto_candidates_follow_the_cpu_flags(cpu, device, expected):
    assert candidates(cpu, device, installed=everything, openvino_int8_ready=lambda: True) == expected


def test_auto_candidates_leave_out_what_is_missing():
    assert candidates(SAPPHIRE_RAPIDS, "cpu", installed=lambda *m: "openvino" not in m,
                      openvino_int8_ready=lambda: False) == ["torch", "bf16", "onnx-int8"]
    assert candidates(SAPPHIRE_RAPIDS, "cpu", exportable=False, installed=everything) == ["torch"]


def test_auto_picks_the_fastest_close_enough():
    exact = {"torch": {"texts_per_s": 100.0, "mean_cosine": 1.0}}
    assert choose({**exact, "onnx-int8": {"texts_per_s": 180.0, "mean_cosine": 0.995}}) == "onnx-int8"
    # broken (far from float32) or failed backends are never picked, however fast
    assert choose({**exact, "onnx-int8": {"texts_per_s": 900.0, "mean_cosine": 0.5},
                   "openvino-int8": {"error": "RuntimeError: no"}}) == "torch"
    # a path that changes embeddings must be clearly faster than the best exact one
    assert choose({**exact, "bf16": {"texts_per_s": 102.0, "mean_cosine": 0.9999}}) == "torch"
    assert choose({**exact, "openvino": {"texts_per_s": 150.0, "mean_cosine": 1.0},
                   "bf16": {"texts_per_s": 152.0, "mean_cosine": 0.9999}}) == "openvino"
    assert choose({**exact, "bf16": {"texts_per_s": 300.0, "mean_cosine": 0.9999},
                   "onnx-int8": {"texts_per_s": 250.0, "mean_cosine": 0.99}}) == "bf16"


def test_auto_calibrates_once_records_the_choice_and_encodes_with_it(tiny_model, texts, monkeypatch):
    calls = []

    def fake_calibrate(model, names, device=None, texts=None):
        calls.append(list(names))
        return {name: {"texts_per_s": 500.0 if name == "int8" else 100.0, "mean_cosine": 0.999} for name in names}

    monkeypatch.setattr(auto_module, "cpu_info", lambda: SAPPHIRE_RAPIDS)
    monkeypatch.setattr(auto_module, "candidates", lambda cpu, device, exportable: ["torch", "bf16", "int8"])
    monkeypatch.setattr(auto_module, "calibrate", fake_calibrate)
    monkeypatch.setattr(auto_module, "_chosen", {})
    assert resolve_backend(tiny_model, "auto") == "int8"
    monkeypatch.setattr(auto_module, "_chosen", {})  # a new process: reads the file, does not measure again
    assert resolve_backend(tiny_model, "auto") == "int8" and calls == [["torch", "bf16", "int8"]]
    record = auto_module.calibration_record(tiny_model)
    assert record["backend"] == "int8" and record["cpu"]["model"] == SAPPHIRE_RAPIDS.model
    # `embedkit info` lists the choices auto would use here: not one of an earlier auto, nor another CPU's
    [choice] = auto_module.recorded_choices()
    assert choice["backend"] == "int8"
    path = Path(choice["path"])
    earlier = {**json.loads(path.read_text()), "auto_version": auto_module.AUTO_VERSION - 1, "backend": "bf16"}
    (path.parent / "earlier.json").write_text(json.dumps(earlier))
    assert [c["backend"] for c in auto_module.recorded_choices()] == ["int8"]
    monkeypatch.setattr(auto_module, "cpu_info", lambda: AVX2)
    assert auto_module.recorded_choices() == []
    monkeypatch.setattr(auto_module, "cpu_info", lambda: SAPPHIRE_RAPIDS)
    assert np.array_equal(encode(tiny_model, texts, backend="auto"), encode(tiny_model, texts, backend="int8"))
    # the cache keys its entries by what auto resolved to
    assert np.array_equal(cached_encode(tiny_model, texts, backend="auto"), encode(tiny_model, texts, backend="int8"))
    assert not np.allclose(cached_encode(tiny_model, texts, backend="torch"), encode(tiny_model, texts, backend="int8"))


def test_auto_is_exact_torch_where_nothing_else_applies(tiny_model, texts, monkeypatch):
    monkeypatch.setattr(auto_module, "candidates", lambda cpu, device, exportable: ["torch"])
    assert resolve_backend(tiny_model, "auto") == "torch"
    assert np.allclose(encode(tiny_model, texts, backend="auto"), tiny_model.encode(texts), atol=1e-6)


def test_real_calibration_measures_each_candidate(tiny_model):
    measured = auto_module.calibrate(tiny_model, ["torch", "int8"], texts=["a short one", "a longer sentence " * 20])
    assert set(measured) == {"torch", "int8"}
    assert measured["torch"]["mean_cosine"] == pytest.approx(1.0, abs=1e-5)
    assert 0.9 < measured["int8"]["mean_cosine"] <= 1.0
    assert all(m["texts_per_s"] > 0 and len(m["seconds"]) == auto_module.ROUNDS for m in measured.values())


def test_cache_keys_differ_per_backend():
    keys = {_chunk_key("fp", "", False, ["a", "b"], backend) for backend in BACKENDS if backend != "auto"
            and backend != "openvino-int8"}
    assert len(keys) == len(BACKENDS) - 2


def test_index_records_the_backend_and_searches_with_it(tiny_model, texts):
    from embedkit.data import Document
    from embedkit.index import build_index

    docs = [Document(str(i), "", t) for i, t in enumerate(texts[:20])]
    index = build_index(tiny_model, docs, show_progress=False, backend="int8")
    assert index.build_params["backend"] == "int8"
    assert build_index(tiny_model, docs, show_progress=False).build_params["backend"] == "torch"


def test_static_model_loads_in_embedkit_and_sentence_transformers(tiny_model_dir, tmp_path, texts, capsys):
    pytest.importorskip("model2vec")
    from sentence_transformers import SentenceTransformer

    from embedkit.cli.main import main
    from embedkit.models import load_model

    source, out = tiny_model_dir, tmp_path / "static"  # model2vec embeds all 30k vocabulary tokens: ~15 s
    assert main(["distill", "static", "--model", str(source), "--out", str(out), "--pca-dims", "8"]) == 0
    ours, theirs = load_model(str(out)), SentenceTransformer(str(out), device="cpu")
    embedded = encode(ours, texts)
    assert embedded.shape == (len(texts), 8)
    np.testing.assert_allclose(embedded, theirs.encode(texts), atol=1e-6)
    assert json.loads((out / "embedkit_static.json").read_text())["source"] == str(source)
    assert np.linalg.norm(embedded[0]) == pytest.approx(1.0, abs=1e-5)  # normalised, as model2vec's models are
    assert resolve_backend(ours, "auto") == "torch"  # nothing to export: no calibration


def test_distill_static_rejects_a_bad_width(tiny_model_dir, tmp_path, capsys):
    pytest.importorskip("model2vec")
    from embedkit.cli.main import main

    assert main(["distill", "static", "--model", str(tiny_model_dir), "--out", str(tmp_path / "s"),
                 "--pca-dims", "999"]) == 2
    assert "--pca-dims must be in 1..32" in capsys.readouterr().err


def test_info_prints_the_cpu_flags_and_backends(capsys):
    from embedkit.cli.main import main
    from embedkit.machine import cpu_info

    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["cpu"] == cpu_info().model and info["kernels"] == cpu_info().kernels
    assert info["flags"]["avx2"] == ("avx2" in cpu_info().flags) and "amx_int8" in info["flags"]
    assert set(info["backends"]) == set(BACKENDS)
