"""The ccp method end to end on the tiny model: documents -> sentences -> context pairs -> CCP training."""
from __future__ import annotations

import pytest

from embedkit.errors import ConfigError
from embedkit.training import run_recipe, validate_recipe
from embedkit.training.ccp import CCPParams, ccp_columns

DOCS = [
    "The old man reads a book. He likes history. His favourite era is Rome. He reads every night.",
    "A young girl paints a boat. The boat is blue. She paints it by the lake. Her friends watch her.",
    "Our teacher carries bread. The bread is fresh. He shares it in class. Everyone is happy.",
]


@pytest.fixture()
def ccp_recipe(tiny_recipe, data_dir):
    (data_dir / "docs.txt").write_text("\n".join(DOCS) + "\n", encoding="utf-8")
    return lambda **params: tiny_recipe(
        method="ccp", data={"kind": "sentences", "path": "docs.txt"}, loss=None, max_steps=3, batch_size=4,
        eval={"sets": [{"kind": "sts", "path": "stsb", "split": "dev"}], "before": True, "batch_size": 8},
        params={"window": 2, "memory_bank_size": 16, **params})


def test_columns_pair_sentences_of_the_same_document(ccp_recipe):
    recipe = validate_recipe(ccp_recipe())
    columns = ccp_columns(recipe, CCPParams(window=1, mask_same_document=False))
    assert len(columns["anchor"]) == 12 and set(columns["label"]) == {0}
    sentences = {s: i for i, doc in enumerate(DOCS) for s in doc.replace(". ", ".\n").splitlines()}
    for anchor, positive in zip(columns["anchor"], columns["positive"]):
        assert sentences[anchor] == sentences[positive]
    masked = ccp_columns(recipe, CCPParams(window=1, mask_same_document=True))
    assert [sentences[a] for a in masked["anchor"]] == [document for _, document in masked["label"]]


@pytest.mark.parametrize("mask_same_document", [False, True])
def test_ccp_trains_and_reports_before_after(ccp_recipe, tmp_path, mask_same_document):
    result = run_recipe(validate_recipe(ccp_recipe(mask_same_document=mask_same_document)), tmp_path / "out")
    assert result.steps == 3
    assert set(result.before) == set(result.after) == {"stsb-dev"}
    assert [entry["step"] for entry in result.during if "embedding_spread" in entry] == [1, 2, 3]
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_ccp_collapse_and_bad_kind(ccp_recipe, tmp_path):
    from embedkit.training.collapse import CollapseError

    with pytest.raises(CollapseError, match="collapsed"):
        run_recipe(validate_recipe(ccp_recipe(collapse_threshold=0.999, collapse_patience=1)), tmp_path / "c")
    recipe = ccp_recipe()
    recipe["data"] = {"kind": "sts", "path": "stsb"}
    with pytest.raises(ConfigError, match="method ccp reads documents"):
        run_recipe(validate_recipe(recipe), tmp_path / "k")


def test_check_counts_context_pairs(ccp_recipe):
    from embedkit.training.ccp import read_ccp_data

    recipe = validate_recipe(ccp_recipe())
    assert read_ccp_data(recipe, CCPParams(window=1)) == (12, 1)


def test_identity_head_is_calibrated_before_the_first_step(ccp_recipe, tmp_path, monkeypatch):
    from embedkit.losses import CCPLoss

    calibrated = []
    original = CCPLoss.calibrate
    monkeypatch.setattr(CCPLoss, "calibrate", lambda self, e: (calibrated.append(e.shape), original(self, e))[1])
    run_recipe(validate_recipe(ccp_recipe(projection_init="identity", calibration_sentences=5)), tmp_path / "i")
    assert len(calibrated) == 1 and calibrated[0][0] == 5
    run_recipe(validate_recipe(ccp_recipe()), tmp_path / "r")  # random head: the paper's start, no calibration
    assert len(calibrated) == 1
