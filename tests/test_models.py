import pytest

from embedkit.errors import ConfigError, ModelError
from embedkit.models import load_model, looks_local, model_fingerprint


def test_tiny_model_loads_and_fingerprint_is_stable(tiny_model_dir):
    a = load_model(str(tiny_model_dir), device="cpu")
    b = load_model(str(tiny_model_dir), device="cpu")
    assert model_fingerprint(a) == model_fingerprint(b)


def test_fingerprint_changes_with_weights(tiny_model):
    import torch

    before = model_fingerprint(tiny_model)
    with torch.no_grad():
        next(tiny_model.parameters()).add_(1.0)
    assert model_fingerprint(tiny_model) != before


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelError, match="not a model folder"):
        load_model(str(tmp_path))


def test_hub_id_offline_fails_with_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as info:
        load_model("someone/no-such-model-xyz")
    message = str(info.value)
    assert "\n" not in message and "default" in message


def test_max_seq_length_cuts_inputs_and_is_checked(tiny_model_dir):
    full = load_model(str(tiny_model_dir), device="cpu")
    cut = load_model(str(tiny_model_dir), device="cpu", max_seq_length=4)
    assert cut.max_seq_length == 4 and model_fingerprint(cut) != model_fingerprint(full)
    long_text = ["one two three four five six seven eight nine ten"]
    assert cut.tokenize(long_text)["input_ids"].shape[1] == 4 < full.tokenize(long_text)["input_ids"].shape[1]
    positions = full[0].auto_model.config.max_position_embeddings
    for bad in (0, positions + 1):
        with pytest.raises(ConfigError, match=f"max_seq_length must be in 1..{positions}, got {bad}"):
            load_model(str(tiny_model_dir), max_seq_length=bad)


@pytest.mark.parametrize("text, local", [
    ("BAAI/bge-small-en-v1.5", False), ("bert-base-uncased", False), ("sentence-transformers/all-MiniLM-L6-v2", False),
    ("./runs/x", True), ("~/models/x", True), ("/abs/x", True), ("a/b/c", True), ("org/na--me", True),
    ("org/..x", True), ("org/", True), ("runs\\x", True),
])
def test_looks_local(text, local, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert looks_local(text) is local


def test_mistyped_relative_model_path_gets_the_local_error_at_once(tiny_model_dir, tmp_path, monkeypatch):
    """``runs/simcse-55`` when ``runs/`` exists is a typo, not a hub id: no hub lookup (which online retries
    for a minute), and the message lists the model folders that are there."""
    import shutil
    import time

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    shutil.copytree(tiny_model_dir, tmp_path / "runs" / "simcse-5")
    started = time.perf_counter()
    with pytest.raises(ModelError) as info:
        load_model("runs/simcse-55")
    message = str(info.value)
    assert message.startswith("runs/simcse-55: no such model folder") and "simcse-5" in message
    assert "hub" not in message and time.perf_counter() - started < 5


def test_check_model_finds_what_load_model_would_refuse_without_loading(tmp_path, monkeypatch):
    from embedkit.models import check_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    check_model("default")
    with pytest.raises(ModelError, match="offline, and not in the local hub cache"):
        check_model("someone/no-such-model-xyz")
    with pytest.raises(ModelError, match="not a model folder"):
        check_model(str(tmp_path))
