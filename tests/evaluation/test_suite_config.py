"""Suite files: parsing, resolution of local data and globs, and one-line errors that name file, line and field."""
from __future__ import annotations

from pathlib import Path

import pytest

from embedkit.errors import ConfigError
from embedkit.evaluation.suite import load_suite
from helpers import write_beir, write_stsb

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def data(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "data"
    (root / "stsb").mkdir(parents=True)
    for split in ("train", "dev", "test"):
        write_stsb(root / "stsb" / f"sts-{split}.csv")
    write_beir(root / "beir-toy")
    monkeypatch.setenv("EMBEDKIT_DATA", str(root))
    return root


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_local_and_mteb_tasks_resolve(tmp_path, data):
    suite = load_suite(write(tmp_path, """
name: mine
description: two local tasks and one MTEB task
tasks:
  - {type: sts, data: stsb, split: dev}
  - type: retrieval
    data: beir-toy
    label: toy retrieval
  - {type: mteb, task: STS12}
"""))
    assert suite.name == "mine" and suite.description.startswith("two local")
    sts, retrieval, mteb_task = suite.tasks
    assert (sts.type, sts.path, sts.split, sts.label) == ("sts", data / "stsb", "dev", None)
    assert (retrieval.type, retrieval.path, retrieval.split, retrieval.label) == (
        "retrieval", data / "beir-toy", "test", "toy retrieval")
    assert (mteb_task.type, mteb_task.mteb_name, mteb_task.label) == ("mteb", "STS12", "STS12")
    assert sts.source.endswith("suite.yaml, line 5") and retrieval.source.endswith("line 6")


def test_name_defaults_to_the_file_stem(tmp_path, data):
    assert load_suite(write(tmp_path, "tasks: [{type: sts, data: stsb}]\n")).name == "suite"


def test_glob_makes_one_task_per_match_minus_excluded(tmp_path, data):
    suite = load_suite(write(tmp_path, 'tasks:\n  - {type: sts, glob: "**/sts-*.csv", exclude: ["*train*"]}\n'))
    assert [t.path.name for t in suite.tasks] == ["sts-dev.csv", "sts-test.csv"]


def test_unknown_task_type_is_one_line_with_file_line_and_field(tmp_path, data):
    path = write(tmp_path, "tasks:\n  - {type: sts, data: stsb}\n  - {type: clustering, data: stsb}\n")
    message = error_of(path)
    assert message.startswith(f"{path}, line 3, field 'tasks[1].type': unknown task type 'clustering'")
    assert "sts, retrieval, mteb" in message


def test_missing_type(tmp_path, data):
    assert "field 'tasks[0].type': missing 'type'" in error_of(write(tmp_path, "tasks:\n  - {data: stsb}\n"))


def test_missing_data_names_the_task_and_the_path(tmp_path, data):
    path = write(tmp_path, "tasks:\n  - {type: sts, data: stsb}\n  - {type: retrieval, data: no-such-folder}\n")
    message = error_of(path)
    assert message.startswith(f"{path}, line 3, field 'tasks[1].data': no-such-folder: no such file or folder")
    assert str(data) in message


def test_glob_without_matches_is_an_error(tmp_path, data):
    message = error_of(write(tmp_path, 'tasks:\n  - {type: sts, glob: "sick/*.txt"}\n'))
    assert "field 'tasks[0].glob': 'sick/*.txt' matches no data under EMBEDKIT_DATA" in message


@pytest.mark.parametrize("task, expected", [
    ("{type: sts, data: stsb, spilt: test}", "field 'tasks[0].spilt': unknown key"),
    ("{type: mteb}", "field 'tasks[0].task': missing key"),
    ("{type: sts}", "give exactly one of 'data' (a path) or 'glob'"),
    ("{type: sts, data: stsb, glob: '*'}", "give exactly one of 'data'"),
    ("{type: sts, data: stsb, exclude: ['*']}", "'exclude' filters the matches of 'glob'"),
])
def test_bad_task_entries(tmp_path, data, task, expected):
    assert expected in error_of(write(tmp_path, f"tasks:\n  - {task}\n"))


def test_unknown_top_level_key_and_empty_task_list(tmp_path, data):
    assert "field 'task': unknown key" in error_of(write(tmp_path, "task: []\ntasks: [{type: sts, data: stsb}]\n"))
    assert "field 'tasks'" in error_of(write(tmp_path, "tasks: []\n"))


def test_not_yaml_and_not_a_mapping_and_no_file(tmp_path, data):
    assert "suite.yaml, line 3: not valid YAML" in error_of(write(tmp_path, "tasks:\n  - {type: sts\n"))
    assert "a suite is a YAML mapping" in error_of(write(tmp_path, "- a\n- b\n"))
    assert "no such suite file" in error_of(tmp_path / "absent.yaml")


def test_shipped_suites_parse(shared_data, monkeypatch):
    monkeypatch.setenv("EMBEDKIT_DATA", str(shared_data))
    quick = load_suite(REPO / "evaluation" / "quick.yaml")
    assert [(t.type, t.path.name, t.split) for t in quick.tasks] == [("sts", "stsb", "test"),
                                                                     ("retrieval", "scifact", "test")]
    sts = load_suite(REPO / "evaluation" / "sts.yaml")
    assert [t.path.name for t in sts.tasks] == ["sts-dev.csv", "sts-test.csv"]
    full = load_suite(REPO / "evaluation" / "full.yaml")
    assert {t.type for t in full.tasks} == {"sts", "retrieval"} and len(full.tasks) == 3
