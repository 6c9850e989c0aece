"""results/encode/tables.py: quality merged over several records, and the issue's targets judged from the rows."""

import pytest

from helpers import load_script


@pytest.fixture(scope="module")
def tables():
    return load_script("results/encode/tables.py")


def _quality(*rows):
    return {"metrics": {"rows": list(rows)}}


def test_quality_rows_merge_records_and_flag_against_the_float32_row_of_any(tables):
    first = _quality({"method": "sentence-transformers", "stsb_test_spearman": 82.0, "scifact_ndcg@10": 64.5},
                     {"method": "onnx-int8", "stsb_test_spearman": 81.9, "scifact_ndcg@10": 64.4})
    second = _quality({"method": "sentence-transformers", "stsb_test_spearman": 82.0},  # no SciFact: kept from first
                      {"method": "onnx-int8", "stsb_test_spearman": 10.0},  # the first record holding a metric wins
                      {"method": "bf16", "stsb_test_spearman": 81.4},  # 0.6 under: flagged
                      {"method": "openvino-int8", "stsb_test_spearman": 81.6, "scifact_ndcg@10": 64.1})
    rows = tables._quality_rows([first, second])
    assert rows["onnx-int8"]["stsb_test_spearman"] == 81.9
    assert tables._quality_rows([second, first])["sentence-transformers"]["scifact_ndcg@10"] == 64.5
    assert rows["bf16"]["flagged"] and not rows["onnx-int8"]["flagged"] and not rows["openvino-int8"]["flagged"]


def _auto(best_st_ratio, st_ratio, unquiet=()):
    return {"auto": {"ratio_vs_best_st": best_st_ratio, "ratio_vs_st": st_ratio, "best_st": "st-onnx-int8",
                     "unquiet_st": list(unquiet)}}


def _run(method, seconds, others, texts=100):
    return {"method": method, "batch_size": 32, "texts": texts, "seconds": seconds, "others_cpu": others}


def test_summaries_count_only_quiet_runs_and_compare_only_quiet_rows(tables):
    record = {"metrics": {"rows": [
        _run("sentence-transformers", [1.0, 9.0, 8.0], [0.0, 1.0, 1.0]),  # one quiet run: 100 texts/s
        _run("st-onnx-O1", [0.5, 0.6, 0.7], [0.1, 0.2, 0.0]),  # 0.6 s: the fastest quiet peer
        _run("st-openvino", [0.1, 0.1, 0.1], [0.9, 0.9, 0.9]),  # never quiet: not the best peer, no ratio
        _run("auto", [0.4, 3.0, 0.2], [0.0, 1.0, 0.2]),  # quiet median of 0.4 and 0.2
        {"method": "auto", "summary": True, "texts_per_s": 1.0},  # the run's own summary is not used
    ]}}
    summaries = tables._summaries(record)
    assert summaries["sentence-transformers"]["texts_per_s"] == pytest.approx(100.0)
    assert summaries["auto"]["texts_per_s"] == pytest.approx(100 / 0.3)
    assert summaries["auto"]["quiet_runs"] == 2 and summaries["st-openvino"]["quiet_runs"] == 0
    assert summaries["auto"]["best_st"] == "st-onnx-O1" and summaries["auto"]["unquiet_st"] == ["st-openvino"]
    assert summaries["auto"]["ratio_vs_best_st"] == pytest.approx(0.6 / 0.3)
    assert summaries["st-openvino"]["ratio_vs_st"] is None


def test_targets_line_says_met_and_not_met(tables):
    line = tables._targets_line({"kernels": "avx2"}, _auto(1.10, 2.6), _auto(0.95, 1.9), {"auto": {"flagged": False}})
    assert "STS-B 1.10x" in line and "SciFact 0.95x" in line
    assert line.count("**not met**") == 1  # SciFact speed only; 2.6x does not count on a CPU without VNNI/AMX
    assert "applies only to CPUs with VNNI or AMX" in line
    amx = tables._targets_line({"kernels": "amx"}, _auto(1.2, 2.4), {}, {"auto": {"flagged": True}})
    assert "2.40x, **not met**" in amx and "quality within 0.5 points of sentence-transformers float32: **not met**" in amx
    assert "no speed row" in tables._targets_line({"kernels": "avx2"}, {}, {}, {})
    partial = tables._targets_line({"kernels": "avx2"}, _auto(1.2, 1.5, ["st-openvino"]), {}, {"auto": {"flagged": False}})
    assert "met among the rows with a quiet run" in partial and "`openvino`, float32" in partial


def test_cpu_kind_keeps_vendors_and_generations_with_the_same_instruction_sets_apart():
    from embedkit.machine import CpuInfo

    flags = ("avx2", "avx512f", "avx512_vnni")
    zen5 = CpuInfo("AMD EPYC", 2, flags, "26", "2", "amd")
    ice_lake = CpuInfo("Intel Xeon", 2, flags, "6", "106", "intel")
    assert zen5.kernels == ice_lake.kernels == "avx512_vnni"
    assert zen5.kind == "amd-f26m2-avx512_vnni" and ice_lake.kind == "intel-f6m106-avx512_vnni"
    assert CpuInfo("?", 1, ()).kind == "cpu-unknown-other"


def test_each_recorded_cpu_kind_has_its_own_tables(tables):
    kinds = tables._cpu_kinds_found()
    assert "amd-f23m49-avx2" in kinds and "amd-f26m2-avx512_vnni" in kinds
    for kind in kinds:  # the folder's name is the kind its records were measured on
        records = tables._records(kind)
        cpu = (tables._speed_records(records) or records["quality"])[0]["cpu"]
        # records written before CpuInfo had a vendor and a kind name the rest of it
        assert kind == cpu["kind"] if "kind" in cpu else kind.endswith(f"-f{cpu['family']}m{cpu['model_number']}-{cpu['kernels']}")
        assert f"encode-cpu-{kind}" in tables.TABLES
