"""Reports: the Markdown table (scores x100, best in bold, deltas, significance marks), the PNG chart, the CLI."""
from __future__ import annotations

import datetime
import json
import struct

import numpy as np
import pytest

from embedkit.cli.main import main
from embedkit.errors import ConfigError
from embedkit.evaluation.report import build_report, chart_figure, render_markdown, render_table, write_report
from embedkit.evaluation.results import read_results, write_task_result
from embedkit.evaluation.suite import load_suite
from embedkit.evaluation.suite_runner import run_suite
from helpers import write_beir, write_stsb

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def model_meta(name: str, revision: str):
    import mteb

    return mteb.models.ModelMeta(
        loader=None, name=name, revision=revision, release_date=None, languages=None, n_parameters=None,
        memory_usage_mb=None, max_tokens=None, embed_dim=None, license=None, open_weights=True,
        public_training_code=None, public_training_data=None, framework=[], similarity_fn_name="cosine",
        use_instructions=None, training_datasets=None)


def store(out, meta, task_name: str, label: str, metric: str, score: float, minute: int, per_item=None):
    import mteb

    result = mteb.TaskResult(
        dataset_revision="rev-" + task_name, task_name=task_name, mteb_version=mteb.__version__,
        scores={"test": [{"main_score": score, metric: score, "hf_subset": "default", "languages": ["eng-Latn"]}]},
        evaluation_time=1.0, date=datetime.datetime(2026, 1, 1, 12, minute, tzinfo=datetime.timezone.utc))
    provenance = {"label": label, "main_score": metric, "task_type": "STS" if "spearman" in metric else "Retrieval",
                  "model_fingerprint": meta.revision, "model_argument": meta.name.split("/")[-1],
                  "data": f"/data/{label}", "data_checksum": "c" * 16, "command": f"embedkit eval suite x.yaml",
                  "versions": {"embedkit": "0.1.0", "mteb": mteb.__version__}}
    write_task_result(out, meta, result, provenance, per_item)


@pytest.fixture()
def two_models(tmp_path):
    """Model A (evaluated first) and B: B is clearly better on STS, clearly worse on retrieval, equal on a third
    task, and has no result on a fourth."""
    rng = np.random.default_rng(0)
    gold = rng.uniform(0, 1, 200)
    near, far = gold + rng.normal(0, 0.05, 200), gold + rng.normal(0, 0.6, 200)
    per_query_a = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0.5, 1.0, 60))}
    per_query_b = {q: v - 0.3 for q, v in per_query_a.items()}
    a, b = model_meta("org/model-a", "aaaaaaaaaaaaaaaa"), model_meta("local/model-b", "bbbbbbbbbbbbbbbb")
    out = tmp_path / "results-dir"
    sts = lambda pred: {"kind": "sts", "metric": "cosine_spearman",  # noqa: E731
                        "groups": {"test/default": {"gold": gold.tolist(), "predicted": pred.tolist()}}}
    ret = lambda scores: {"kind": "retrieval", "metric": "ndcg_at_10",  # noqa: E731
                          "groups": {"test/default": {"scores": scores}}}
    store(out, a, "embedkit-stsb-test", "stsb-test", "cosine_spearman", 0.82032, 0, sts(far))
    store(out, a, "embedkit-scifact-test", "scifact-test", "ndcg_at_10", 0.64508, 1, ret(per_query_a))
    store(out, a, "embedkit-same", "same", "ndcg_at_10", 0.5, 2, ret(per_query_a))
    store(out, a, "embedkit-only-a", "only-a", "ndcg_at_10", 0.3, 3)
    store(out, b, "embedkit-stsb-test", "stsb-test", "cosine_spearman", 0.85117, 10, sts(near))
    store(out, b, "embedkit-scifact-test", "scifact-test", "ndcg_at_10", 0.6, 11, ret(per_query_b))
    store(out, b, "embedkit-same", "same", "ndcg_at_10", 0.5, 12, ret(per_query_a))
    return out


def test_table_has_models_as_columns_scores_x100_best_in_bold_and_deltas(two_models):
    table = render_table(build_report(two_models, n_resamples=2000)).splitlines()
    assert table[0] == "| task | metric | org/model-a | local/model-b |"
    assert table[1] == "|---|---|---:|---:|"
    assert table[2] == "| stsb-test | Spearman (cosine) | 82.03 | **85.12** (+3.09†) |"
    assert table[3] == "| scifact-test | nDCG@10 | **64.51** | 60.00 (-4.51†) |"
    assert table[4] == "| same | nDCG@10 | **50.00** | **50.00** (+0.00) |"  # a tie: both bold, no mark
    assert table[5] == "| only-a | nDCG@10 | **30.00** | – |"
    assert len(table) == 6


def test_markdown_has_significance_and_provenance(two_models):
    text = render_markdown(build_report(two_models, n_resamples=2000), image="report.png", command="embedkit report x")
    assert "Made by `embedkit report x`" in text and "![scores per task and model](report.png)" in text
    significance = text.split("## Significance")[1].split("## Provenance")[0]
    # the deltas are the table's (one rounding), the p values come from the per-item scores
    rows = {line.split(" | ")[0]: line for line in significance.splitlines() if line.startswith("| ")}
    assert rows["| stsb-test"].startswith("| stsb-test | local/model-b | +3.09 |") and rows["| stsb-test"].endswith(
        "† | 200 pairs |")
    assert "| scifact-test | local/model-b | -4.51 |" in significance and "† | 60 queries |" in significance
    assert "| same | local/model-b | +0.00 | 1.0000 | 60 queries |" in significance
    provenance = text.split("## Provenance")[1]
    assert "| org/model-a | `aaaaaaaaaaaaaaaa` | model-a |" in provenance
    assert "| scifact-test | `/data/scifact-test` | `cccccccccccccccc` | `rev-embedkit-scifact-test` |" in provenance
    assert "- `embedkit eval suite x.yaml`" in provenance


def test_models_option_picks_and_orders_columns(two_models):
    report = build_report(two_models, models=["model-b", "aaaa"], n_resamples=200)
    assert [c.header for c in report.columns] == ["local/model-b", "org/model-a"]
    assert render_table(report).splitlines()[2] == "| stsb-test | Spearman (cosine) | **85.12** | 82.03 (-3.09†) |"
    with pytest.raises(ConfigError, match="--models 'nope': no model in the results match"):
        build_report(two_models, models=["nope"])


def test_write_report_makes_markdown_and_a_valid_png_beside_it(two_models, tmp_path):
    from PIL import Image

    md_path, png_path, _ = write_report(two_models, tmp_path / "out" / "compare.md")
    assert md_path.read_text().startswith("# Evaluation report")
    assert png_path == tmp_path / "out" / "compare.png"
    data = png_path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", data[16:24])
    assert width > 300 and height > 200
    with Image.open(png_path) as image:
        image.verify()
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_empty_folder_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no results here" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "absent")]) == 2


def test_report_from_a_suite_run_of_two_tiny_models(tmp_path, tiny_model_dir, second_model_dir, capsys):
    write_stsb(tmp_path / "sts-test.csv")
    write_beir(tmp_path / "toy")
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"tasks:\n  - {{type: sts, data: {tmp_path / 'sts-test.csv'}, label: STS-B}}\n"
                     f"  - {{type: retrieval, data: {tmp_path / 'toy'}}}\n", encoding="utf-8")
    out = tmp_path / "out"
    run_suite(load_suite(suite), [str(tiny_model_dir), str(second_model_dir)], out, show_progress=False,
              log=lambda line: None)
    stored = read_results(out)
    assert main(["report", str(out)]) == 0
    printed = capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert (out / "report.png").read_bytes()[:8] == PNG_SIGNATURE
    first = next(r for r in stored if r.label == "STS-B" and r.revision == sorted(
        {s.revision for s in stored}, key=lambda rev: min(x.date for x in stored if x.revision == rev))[0])
    row = next(line for line in md.splitlines() if line.startswith("| STS-B |"))
    assert row.split(" | ")[2].strip("* ") == f"{100 * first.score:.2f}"  # the first model's score, x100
    header = next(line for line in md.splitlines() if line.startswith("| task | metric |"))
    assert "| toy-test | nDCG@10 |" in md and header.count("local/st@") == 2  # same name: revision shown
    summary = json.loads(printed.strip().splitlines()[-1])
    assert summary["tasks"] == ["STS-B", "toy-test"] and len(summary["models"]) == 2


def test_results_written_by_mteb_itself_are_read_too(tmp_path):
    """A folder mteb filled (no embedkit record): the metric and type come from mteb's task registry."""
    import mteb

    result = mteb.TaskResult(dataset_revision="r", task_name="STS12", mteb_version=mteb.__version__, evaluation_time=1.0,
                             scores={"test": [{"main_score": 0.7, "hf_subset": "default", "languages": ["eng-Latn"]}]})
    mteb.ResultCache(tmp_path).save_to_cache(result, model_meta("org/foreign", "f" * 16))
    (stored,) = read_results(tmp_path)
    assert (stored.label, stored.metric, stored.task_type, stored.model_name) == (
        "STS12", "cosine_spearman", "STS", "org/foreign")
    assert render_table(build_report(tmp_path)).splitlines()[2] == "| STS12 | Spearman (cosine) | 70.00 |"


def test_one_rounding_for_every_delta_on_the_page(tmp_path):
    """Scores 86.724 and 87.0849 show as 86.72 and 87.08: the delta is +0.36 everywhere, never +0.36 in the
    table and +0.35 (the rounded raw difference 0.3609 -> 0.36, or 0.3549 -> 0.35) in the significance table."""
    rng = np.random.default_rng(1)
    a = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0.5, 1.0, 40))}
    ret = lambda scores: {"kind": "retrieval", "metric": "ndcg_at_10", "groups": {"test/default": {"scores": scores}}}  # noqa: E731
    out = tmp_path / "r"
    store(out, model_meta("org/a", "a" * 16), "embedkit-t", "t", "ndcg_at_10", 0.86724, 0, ret(a))
    store(out, model_meta("org/b", "b" * 16), "embedkit-t", "t", "ndcg_at_10", 0.870789, 1,
          ret({q: v + 0.0035 for q, v in a.items()}))
    report = build_report(out, n_resamples=200)
    text = render_markdown(report)
    assert "| t | nDCG@10 | 86.72 | **87.08** (+0.36" in text
    assert "| t | org/b | +0.36 |" in text.split("## Significance")[1]


def test_chart_zooms_on_each_task_and_marks_significant_deltas(two_models):
    report = build_report(two_models, n_resamples=2000)
    figure = chart_figure(report)
    panels = {a.get_title().split("\n")[0]: a for a in figure.axes}
    assert list(panels) == ["stsb-test", "scifact-test", "same", "only-a"]
    low, high = panels["stsb-test"].get_ylim()
    assert 75 < low < 82.03 and 85.12 < high < 92  # not from 0: a 3-point difference fills the panel
    labels = {a.get_title().split("\n")[0]: [t.get_text() for t in a.texts] for a in figure.axes}
    assert labels["stsb-test"] == ["82.03", "85.12\n+3.09†"]
    assert labels["scifact-test"] == ["64.51", "60.00\n-4.51†"]
    assert labels["same"] == ["50.00", "50.00\n+0.00"]  # not significant: no mark
    assert labels["only-a"] == ["30.00"]
