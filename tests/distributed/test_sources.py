"""Planning and reading parts of text, BEIR JSONL and Parquet inputs (no cluster needed)."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedkit.distributed.sources import GRAIN, default_rows_per_part, plan_input, read_part, resolve_source
from embedkit.errors import ConfigError, DataError


def read_all(plan) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    for part in plan.parts:
        part_ids, part_texts = read_part(plan.source, part)
        assert len(part_ids) == len(part_texts) == part.rows
        ids += part_ids
        texts += part_texts
    return ids, texts


@pytest.mark.parametrize("rows_per_part", [1, 7, 100, None])
def test_text_parts_cover_every_line_in_order(tmp_path, rows_per_part):
    lines = ["\ufefffirst", "", "third\r", "  ", "naïve 🙂"] + [f"line {i}" for i in range(5, 600)]
    path = tmp_path / "in.txt"
    path.write_bytes(("\n".join(lines)).encode())  # no final newline
    plan = plan_input(resolve_source(path), rows_per_part)
    assert plan.rows == 600
    ids, texts = read_all(plan)
    assert ids == [str(i) for i in range(600)]
    assert texts == ["first", "", "third", "  ", "naïve 🙂"] + lines[5:]
    assert [p.start for p in plan.parts] == list(range(0, 600, plan.rows_per_part))


def test_jsonl_skips_blank_lines_and_joins_title(tmp_path):
    path = tmp_path / "corpus.jsonl"
    docs = [{"_id": f"d{i}", "title": "T" if i % 2 else "", "text": f"text {i}"} for i in range(5)]
    path.write_text("\n".join(json.dumps(d) + ("\n" if i == 2 else "") for i, d in enumerate(docs)) + "\n")
    plan = plan_input(resolve_source(tmp_path), 2)  # a BEIR folder
    assert plan.rows == 5 and [p.rows for p in plan.parts] == [2, 2, 1]
    ids, texts = read_all(plan)
    assert ids == [f"d{i}" for i in range(5)]
    assert texts == ["text 0", "T text 1", "text 2", "T text 3", "text 4"]


def test_jsonl_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": "a", "text": "x"}\n{"_id": "b"}\n')
    plan = plan_input(resolve_source(path), 1)
    with pytest.raises(DataError, match=r"c.jsonl, line 2, field 'text'"):
        read_all(plan)


def test_parquet_parts_cross_files_and_row_groups(tmp_path):
    folder = tmp_path / "pq"
    folder.mkdir()
    rows = 0
    for name, n in (("a.parquet", 700), ("b.parquet", 5), ("c.parquet", 300)):
        table = pa.table({"doc": [f"id{rows + i}" for i in range(n)], "text": [f"t{rows + i}" for i in range(n)]})
        pq.write_table(table, folder / name, row_group_size=64)
        rows += n
    source = resolve_source(folder, id_column="doc")
    plan = plan_input(source, GRAIN)
    assert plan.rows == 1005 and len(plan.parts) == 4
    ids, texts = read_all(plan)
    assert ids == [f"id{i}" for i in range(1005)] and texts == [f"t{i}" for i in range(1005)]
    assert resolve_source(folder).id_column is None  # no id/_id column: row numbers
    assert read_all(plan_input(resolve_source(folder), 512))[0] == [str(i) for i in range(1005)]


def test_parquet_column_errors(tmp_path):
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"id": ["a"], "body": ["x"]}), path)
    with pytest.raises(DataError, match=r"x.parquet, field 'text': no column 'text' \(columns: body, id\)"):
        resolve_source(path)
    pq.write_table(pa.table({"id": [None], "text": ["x"]}), path)
    with pytest.raises(DataError, match="row 1: expected a non-empty string or integer id"):
        read_all(plan_input(resolve_source(path)))


def test_parts_do_not_depend_on_anything_but_rows(tmp_path):
    assert default_rows_per_part(10) == GRAIN
    assert default_rows_per_part(5183) == GRAIN
    assert default_rows_per_part(1_000_000) == 4096
    assert default_rows_per_part(100_000_000) == 16384
    path = tmp_path / "x.txt"
    path.write_text("a\n")
    with pytest.raises(ConfigError, match="multiple of 256"):
        plan_input(resolve_source(path), 300)
