"""Where data is found: the default does not depend on the working directory."""
from __future__ import annotations

import pytest

from embedkit import paths
from embedkit.cli.main import main
from embedkit.errors import DataError
from helpers import write_stsb


@pytest.fixture()
def checkout(tmp_path, monkeypatch):
    """A checkout with ../shared/data/stsb beside it, EMBEDKIT_DATA unset."""
    root = tmp_path / "clone"
    (root / "embedkit").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\n", encoding="utf-8")
    stsb = tmp_path / "shared" / "data" / "stsb"
    stsb.mkdir(parents=True)
    write_stsb(stsb / "sts-test.csv")
    monkeypatch.setattr(paths, "CHECKOUT", root)
    monkeypatch.delenv("EMBEDKIT_DATA", raising=False)
    return root


def test_default_data_folder_is_beside_the_checkout_from_any_folder(checkout, tmp_path, monkeypatch):
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    for cwd in (checkout, elsewhere):
        monkeypatch.chdir(cwd)
        assert paths.data_dir() == tmp_path / "shared" / "data"
        assert paths.resolve_data_path("stsb") == tmp_path / "shared" / "data" / "stsb"


def test_eval_sts_finds_the_default_data_from_another_folder(checkout, tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # ../shared/data from here would be a different folder
    assert main(["eval", "sts", "--model", str(tiny_model_dir), "--data", "stsb"]) == 0
    assert '"n_pairs": 8' in capsys.readouterr().out


def test_installed_package_defaults_to_the_user_data_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CHECKOUT", tmp_path / "site-packages")
    monkeypatch.delenv("EMBEDKIT_DATA", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert paths.data_dir() == tmp_path / "xdg" / "embedkit" / "data"
    assert "installed" in paths.data_dir_origin()


def test_missing_data_says_where_it_looked_and_how_to_get_it(checkout, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as info:
        paths.resolve_data_path("scifact")
    message = str(info.value)
    assert message.startswith("scifact: no such file or folder (looked in ")
    assert str(tmp_path / "shared" / "data") in message and "../shared/data beside the checkout" in message
    assert "embedkit data list" in message


def test_help_says_how_relative_data_paths_resolve(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "sts", "--help"])
    assert "then in EMBEDKIT_DATA (default: ../shared/data beside the embedkit checkout" in " ".join(
        capsys.readouterr().out.split())
