"""Running suites on the tiny random model: mteb-format results with provenance, resuming, offline MTEB tasks."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedkit.cli.main import main
from embedkit.data import data_checksum, load_beir, load_sts
from embedkit.errors import ConfigError, DataError, ModelError
from embedkit.evaluation import evaluate_retrieval, evaluate_sts
from embedkit.evaluation.results import read_results
from embedkit.evaluation.suite import load_suite
from embedkit.evaluation.suite_runner import run_suite
from embedkit.models import model_fingerprint
from helpers import write_beir, write_stsb


@pytest.fixture()
def suite_file(tmp_path) -> Path:
    write_stsb(tmp_path / "sts-test.csv")
    write_beir(tmp_path / "toy")
    path = tmp_path / "suite.yaml"
    path.write_text(f"tasks:\n  - {{type: sts, data: {tmp_path / 'sts-test.csv'}}}\n"
                    f"  - {{type: retrieval, data: {tmp_path / 'toy'}, split: test}}\n", encoding="utf-8")
    return path


def run(suite_file: Path, models, out: Path):
    return run_suite(load_suite(suite_file), [str(m) for m in models], out, show_progress=False,
                     log=lambda line: None, error_log=lambda line: None, command=["embedkit", "test"])


def result_files(out: Path) -> list[Path]:
    return sorted(p for p in (out / "results").glob("*/*/*.json") if p.name != "model_meta.json")


def test_results_are_mteb_results_with_provenance(suite_file, tiny_model_dir, tiny_model, tmp_path):
    import mteb

    out = tmp_path / "out"
    outcomes = run(suite_file, [tiny_model_dir], out).outcomes
    assert [(o.label, o.status) for o in outcomes] == [("stsb-test", "ran"), ("toy-test", "ran")]

    fingerprint = model_fingerprint(tiny_model)
    folder = out / "results" / "local__st" / fingerprint  # one folder per model name and revision
    assert sorted(p.name for p in folder.iterdir()) == ["embedkit-stsb-test.json", "embedkit-toy-test.json",
                                                       "model_meta.json", "per_item"]
    assert len(mteb.ResultCache(out).get_cache_paths(include_remote=False)) == 2  # mteb reads the folder
    sts = mteb.TaskResult.from_disk(folder / "embedkit-stsb-test.json")
    expected = evaluate_sts(tiny_model, load_sts(tmp_path / "sts-test.csv"), show_progress=False)["spearman"]
    assert 100 * sts.get_score() == pytest.approx(expected, abs=1e-3)
    toy = load_beir(tmp_path / "toy", split="test")
    retrieval = mteb.TaskResult.from_disk(folder / "embedkit-toy-test.json")
    assert 100 * retrieval.get_score() == pytest.approx(evaluate_retrieval(tiny_model, toy, show_progress=False)
                                                        ["ndcg@10"], abs=1e-3)

    record = json.loads((folder / "embedkit-toy-test.json").read_text())["embedkit"]
    assert record["model_fingerprint"] == fingerprint and record["model"] == "local/st"
    assert record["data_checksum"] == data_checksum(tmp_path / "toy", "test")
    assert record["dataset_revision"] == retrieval.dataset_revision
    assert record["versions"]["mteb"] == mteb.__version__ and record["versions"]["embedkit"]
    assert record["command"] == "embedkit test" and record["main_score"] == "ndcg_at_10"
    per_query = json.loads((folder / "per_item" / "embedkit-toy-test.json").read_text())
    assert per_query["kind"] == "retrieval" and set(per_query["groups"]["test/default"]["scores"]) == {"q1", "q2", "q3"}
    per_pair = json.loads((folder / "per_item" / "embedkit-stsb-test.json").read_text())["groups"]["test/default"]
    assert len(per_pair["gold"]) == len(per_pair["predicted"]) == 8

    stored = {r.label: r for r in read_results(out)}
    assert stored["stsb-test"].score == pytest.approx(sts.get_score())
    assert stored["toy-test"].metric == "ndcg_at_10" and stored["toy-test"].task_type == "Retrieval"


def test_finished_tasks_are_not_run_again(suite_file, tiny_model_dir, tmp_path, monkeypatch):
    import mteb

    out = tmp_path / "out"
    first = run(suite_file, [tiny_model_dir], out).outcomes

    def fail(*args, **kwargs):
        raise AssertionError("a finished task was evaluated again")

    monkeypatch.setattr(mteb, "evaluate", fail)
    second = run(suite_file, [tiny_model_dir], out).outcomes
    assert [o.status for o in second] == ["done before", "done before"]
    assert [o.score for o in second] == pytest.approx([o.score for o in first])


def test_an_interrupted_suite_continues_where_it_stopped(suite_file, tiny_model_dir, tmp_path, monkeypatch):
    import mteb

    out = tmp_path / "out"
    real_evaluate = mteb.evaluate

    def interrupted_on_retrieval(model, task, **kwargs):
        if "toy" in task.metadata.name:
            raise KeyboardInterrupt
        return real_evaluate(model, task, **kwargs)

    monkeypatch.setattr(mteb, "evaluate", interrupted_on_retrieval)
    with pytest.raises(KeyboardInterrupt):
        run(suite_file, [tiny_model_dir], out)
    assert [p.name for p in result_files(out)] == ["embedkit-stsb-test.json"]

    monkeypatch.setattr(mteb, "evaluate", real_evaluate)
    assert [o.status for o in run(suite_file, [tiny_model_dir], out).outcomes] == ["done before", "ran"]
    assert not list(out.rglob("*.tmp"))


def test_a_damaged_or_stale_result_is_run_again(suite_file, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    run(suite_file, [tiny_model_dir], out)
    sts_result, retrieval_result = result_files(out)
    retrieval_result.write_text('{"dataset_revision": "x", "task_na')  # a writer killed half-way
    write_stsb(tmp_path / "sts-test.csv", rows=[("g", "One.", "Two.", 1.0), ("g", "Three.", "Four.", 2.0),
                                                ("g", "Five.", "Six.", 4.0)])  # the data changed
    outcomes = run(suite_file, [tiny_model_dir], out).outcomes
    assert [o.status for o in outcomes] == ["ran", "ran"]
    assert json.loads(sts_result.read_text())["embedkit"]["data_checksum"] == data_checksum(tmp_path / "sts-test.csv")


def test_each_model_gets_its_own_folder(suite_file, tiny_model_dir, second_model_dir, tmp_path):
    out = tmp_path / "out"
    outcomes = run(suite_file, [tiny_model_dir, second_model_dir], out).outcomes
    assert len({o.fingerprint for o in outcomes}) == 2
    assert len({p.parent for p in result_files(out)}) == 2


def test_offline_mteb_task_fails_in_one_line_and_the_rest_runs(suite_file, tiny_model_dir, tmp_path, capsys,
                                                                monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with open(suite_file, "a", encoding="utf-8") as f:
        f.write("  - {type: mteb, task: STS12}\n")
    out = tmp_path / "out"
    code = main(["eval", "suite", str(suite_file), "--model", str(tiny_model_dir), "--out", str(out),
                 "--no-progress"])
    captured = capsys.readouterr()
    assert code == 2
    errors = [line for line in captured.err.splitlines() if line.startswith("embedkit: error:")]
    assert len(errors) == 1
    assert "line 4: MTEB task 'STS12' skipped" in errors[0] and "HF_HUB_OFFLINE" in errors[0]
    assert "Traceback" not in captured.err
    assert len(result_files(out)) == 2
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["failed"] == ["STS12"] and summary["ran"] == 2


def test_unknown_mteb_name_and_bad_data_fail_before_any_model_loads(tmp_path, monkeypatch):
    import embedkit.models

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the suite was checked")

    monkeypatch.setattr(embedkit.models, "load_model", no_model)
    suite = tmp_path / "suite.yaml"
    suite.write_text("tasks:\n  - {type: mteb, task: NoSuchMtebTask}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"suite.yaml, line 2: unknown MTEB task 'NoSuchMtebTask'"):
        run(suite, ["default"], tmp_path / "out")

    (tmp_path / "bad.csv").write_text("sentence1,sentence2,score\na,b,high\n", encoding="utf-8")
    suite.write_text(f"tasks:\n  - {{type: sts, data: {tmp_path / 'bad.csv'}}}\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.csv, line 2, field 'score'.*\(task at .*suite.yaml, line 2\)"):
        run(suite, ["default"], tmp_path / "out")


@pytest.mark.e2e
def test_default_model_reproduces_stsb_and_resumes(shared_data, tmp_path):
    suite = tmp_path / "stsb.yaml"
    suite.write_text(f"tasks:\n  - {{type: sts, data: {shared_data / 'stsb'}, split: test}}\n", encoding="utf-8")
    first = run(suite, ["default"], tmp_path / "out").outcomes
    assert first[0].status == "ran" and round(100 * first[0].score, 2) == 82.03
    second = run(suite, ["default"], tmp_path / "out").outcomes
    assert second[0].status == "done before" and second[0].score == pytest.approx(first[0].score)


def test_a_model_that_cannot_load_fails_before_any_task_runs(suite_file, tiny_model_dir, tmp_path, monkeypatch):
    """``--model default --model runs/typo``: the typo is found before the first model's tasks run."""
    import embedkit.evaluation.suite_runner as runner

    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "_run_one", lambda *a, **k: pytest.fail("a task ran before every model was checked"))
    with pytest.raises(ModelError, match="runs/typo: no such model folder"):
        run(suite_file, [tiny_model_dir, "runs/typo"], tmp_path / "out")
    with pytest.raises(ModelError, match="not a model folder"):
        run(suite_file, [tiny_model_dir, tmp_path / "runs"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
