"""The held-out suffix identification table places a slow scorer's slices (study.py --part K/N) at their
prefixes, compares scorers on the prefixes all of them were measured on, and refuses overlaps."""
from pathlib import Path

import pytest

from embedkit.records import make_record, write_record

from helpers import load_script


def _tables():
    return load_script("results/generative/tables.py")


def _write(folder: Path, name: str, part: list[int], hits: dict) -> None:
    metrics = {spec: {"n_prefixes": len(h["hits_all"]), "accuracy_all": 0.0, "candidates_all": 4} for spec, h in hits.items()}
    write_record(folder / f"{name}.json", make_record("rankgen-suffix-id", metrics, "test", 0.0,
                                                      details={"part": part, "per_prefix": hits}))


def test_parts_are_placed_at_their_prefixes(tmp_path):
    _write(tmp_path, "rankgen-suffix-id-held-out-a", [1, 1], {"default": {"hits_all": [1, 0, 1, 0, 1]}})
    _write(tmp_path, "rankgen-suffix-id-held-out-lm-2", [2, 2], {"lm:default": {"hits_all": [0, 0, 1]}})
    total, hits = _tables().held_out_hits(tmp_path)
    assert total == 5
    assert hits["lm:default"]["hits_all"] == {2: 0, 3: 0, 4: 1}
    assert hits["default"]["hits_all"] == {0: 1, 1: 0, 2: 1, 3: 0, 4: 1}


def test_overlapping_parts_are_refused(tmp_path):
    _write(tmp_path, "rankgen-suffix-id-held-out-a", [1, 1], {"default": {"hits_all": [1, 0]}})
    _write(tmp_path, "rankgen-suffix-id-held-out-b", [1, 2], {"default": {"hits_all": [0]}})
    with pytest.raises(ValueError, match="overlaps"):
        _tables().held_out_hits(tmp_path)


def test_a_part_of_the_wrong_size_is_refused(tmp_path):
    _write(tmp_path, "rankgen-suffix-id-held-out-a", [1, 1], {"default": {"hits_all": [1, 0, 1, 1]}})
    _write(tmp_path, "rankgen-suffix-id-held-out-b", [1, 2], {"lm:default": {"hits_all": [0]}})
    with pytest.raises(ValueError, match="part 1/2 of 4"):
        _tables().held_out_hits(tmp_path)
