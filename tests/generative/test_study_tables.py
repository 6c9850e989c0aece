"""The held-out suffix identification table merges a scorer's slices (study.py --part K/N) exactly."""
import importlib.util
from pathlib import Path

import pytest

from embedkit.records import make_record, write_record

ROOT = Path(__file__).resolve().parents[2]


def _tables():
    spec = importlib.util.spec_from_file_location("generative_tables", ROOT / "results/generative/tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(folder: Path, name: str, part: list[int], hits: dict) -> None:
    write_record(folder / f"{name}.json", make_record("rankgen-suffix-id", {}, "test", 0.0,
                                                      details={"part": part, "per_prefix": hits}))


def test_parts_merge_in_order_and_incomplete_scorers_are_left_out(tmp_path):
    _write(tmp_path, "rankgen-suffix-id-held-out-lm-2", [2, 2], {"lm:default": {"hits_all": [0, 0]}})
    _write(tmp_path, "rankgen-suffix-id-held-out-lm-1", [1, 2], {"lm:default": {"hits_all": [1, 1, 0]}})
    _write(tmp_path, "rankgen-suffix-id-held-out-x", [1, 3], {"other": {"hits_all": [1]}})
    merged = _tables().held_out_hits(tmp_path)
    assert merged == {"lm:default": {"hits_all": [1, 1, 0, 0, 0]}}


def test_overlapping_parts_are_refused(tmp_path):
    _write(tmp_path, "rankgen-suffix-id-held-out-a", [1, 1], {"default": {"hits_all": [1]}})
    _write(tmp_path, "rankgen-suffix-id-held-out-b", [1, 1], {"default": {"hits_all": [0]}})
    with pytest.raises(ValueError, match="overlaps"):
        _tables().held_out_hits(tmp_path)
