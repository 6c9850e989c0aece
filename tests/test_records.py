import json

import pytest

from embedkit.errors import DataError
from embedkit.machine import cpu_info
from embedkit.records import load_records, make_record, recording, render_document, write_record

from helpers import load_script


def test_record_carries_environment(tmp_path):
    path = write_record(tmp_path / "a.json", make_record("x", {"ndcg@10": 64.5}, ["embedkit", "eval"], 1.23456))
    record = json.loads(path.read_text())
    assert record["metrics"] == {"ndcg@10": 64.5}
    assert record["command"] == "embedkit eval"
    assert record["wall_seconds"] == 1.235
    assert record["cpu"]["model"] == cpu_info().model and isinstance(record["cpu"]["flags"], list)
    assert record["packages"]["numpy"]
    assert len(record["commit"].split("-")[0]) in (40, 7) or record["commit"] == "unknown"


def test_recording_writes_only_on_success(tmp_path):
    with recording(tmp_path / "ok.json", "ok", "cmd") as rec:
        rec.metrics["v"] = 1
    with pytest.raises(RuntimeError), recording(tmp_path / "bad.json", "bad", "cmd") as rec:
        raise RuntimeError("boom")
    assert [r["name"] for r in load_records(tmp_path)] == ["ok"]


def test_render_document_replaces_and_checks(tmp_path):
    doc = tmp_path / "d.md"
    doc.write_text("intro\n<!-- table: t -->\n| old |\n<!-- /table: t -->\nend\n")
    tables = {"t": lambda: "| new |"}
    assert render_document(doc, tables, check=True) == ["t"]
    assert "| old |" in doc.read_text()  # check writes nothing
    assert render_document(doc, tables) == ["t"]
    assert doc.read_text() == "intro\n<!-- table: t -->\n| new |\n<!-- /table: t -->\nend\n"
    assert render_document(doc, tables, check=True) == []


def test_unknown_table_marker_is_an_error(tmp_path):
    doc = tmp_path / "d.md"
    doc.write_text("<!-- table: typo -->\nx\n<!-- /table: typo -->\n")
    with pytest.raises(DataError, match="unknown table 'typo'"):
        render_document(doc, {})


def test_a_table_whose_record_is_missing_is_named(tmp_path):
    from embedkit.records import load_record

    doc = tmp_path / "d.md"
    doc.write_text("<!-- table: t -->\nx\n<!-- /table: t -->\n")
    with pytest.raises(DataError, match=r"d.md: table 't': .*gone.json: not a readable record"):
        render_document(doc, {"t": lambda: load_record(tmp_path / "gone.json")})
    doc.write_text("<!-- table: t -->\nx\n<!-- /table: t -->\n<!-- table: u -->\nold\n<!-- /table: u -->\n")
    errors: list = []
    tables = {"t": lambda: load_record(tmp_path / "gone.json"), "u": lambda: "new"}
    assert render_document(doc, tables, errors=errors) == ["u"]  # the readable table is still rendered
    assert doc.read_text() == "<!-- table: t -->\nx\n<!-- /table: t -->\n<!-- table: u -->\nnew\n<!-- /table: u -->\n"
    assert len(errors) == 1 and "table 't'" in str(errors[0]) and "gone.json: not a readable record" in str(errors[0])


def test_documents_agree_with_records():
    """Every generated table in the README, training/, benchmarks/, evaluation/ and docs/ matches its records."""
    module = load_script("results/tables.py")
    tables = module.all_tables()
    errors: list = []
    stale = {str(doc): render_document(doc, tables, check=True, errors=errors) for doc in module.documents()}
    assert not [str(e) for e in errors]  # a table whose records are not committed
    assert not {doc: names for doc, names in stale.items() if names}


def test_seed_ranges_read_as_ranges_when_negative():
    from embedkit.records import fmt_seeds

    assert fmt_seeds([1.0, 2.0, 3.0]) == "2.00 (1.00-3.00)"
    assert fmt_seeds([-1.15, -0.59]) == "-0.87 (-1.15 to -0.59)"
    assert fmt_seeds([None, 4.0]) == "4.00" and fmt_seeds([]) == "–"
