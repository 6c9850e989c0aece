"""The newcomer's rough edges (#18): closed pipes, --version, help texts, option errors."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from embedkit.cli.main import EXIT_BROKEN_PIPE, build_parser, main

REPO = Path(__file__).resolve().parents[2]


def _embedkit(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "embedkit.cli.main", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


@pytest.mark.parametrize("argv", [["cache", "info"], ["data", "list"]])
def test_closed_pipe_is_quiet(argv):
    """``embedkit ... | head -1``: the reader is gone before embedkit writes (closed here before the
    interpreter has even started), so every write fails with EPIPE; no traceback, the status a shell
    gives a process killed by SIGPIPE."""
    proc = _embedkit(*argv)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == EXIT_BROKEN_PIPE
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err


def test_version(capsys):
    from embedkit import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"embedkit {__version__}"


def _subparser(parser, *path):
    for name in path:
        action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        parser = action.choices[name]
    return parser


@pytest.mark.parametrize("path", [("demo",), ("mine",), ("generate",), ("encode",), ("data", "get")])
def test_every_option_has_help(path):
    """``--help`` explains every option (demo, mine --seed, generate --beam-size/--temperature/--seed had none)."""
    parser = _subparser(build_parser(), *path)
    bare = [a.option_strings or [a.dest] for a in parser._actions if not a.help]
    assert bare == []


def test_encode_shows_input_as_required(capsys):
    """``--input`` is required; the usage line says so instead of listing it as optional."""
    with pytest.raises(SystemExit) as info:
        main(["encode", "--out", "x.npy"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "the following arguments are required: --input" in err
    usage = _subparser(build_parser(), "encode").format_usage()
    assert "--input INPUT" in usage and "[--input INPUT]" not in usage


def test_evaluation_draws_no_mteb_or_datasets_bars(tiny_model_dir, tmp_path, capfd):
    """mteb's "Searching corpus chunks" and datasets' map bars nested around embedkit's own and filled
    `make demo`'s output with cursor-up escape codes."""
    from helpers import write_beir, write_stsb

    assert main(["eval", "retrieval", "--model", str(tiny_model_dir), "--data", str(write_beir(tmp_path / "b"))]) == 0
    assert main(["eval", "sts", "--model", str(tiny_model_dir), "--data", str(write_stsb(tmp_path / "sts-test.csv"))]) == 0
    err = capfd.readouterr().err
    for noise in ("Searching corpus", "Standardizing", "Loading weights", "\x1b[A", "it/s]"):
        assert noise not in err


@pytest.mark.parametrize("argv", [
    ["eval", "sts", "--data", "stsb", "--model", "runs/simcse-55"],
    ["eval", "suite", "evaluation/quick.yaml", "--model", "default", "--model", "runs/simcse-55"],
    ["demo", "--model", "runs/simcse-55"],
])
def test_a_model_that_cannot_load_fails_before_torch_is_imported(argv, tmp_path):
    """A mistyped model folder is found in a fraction of a second: before the command imports torch (seconds,
    a minute on a loaded machine) and reads its data."""
    (tmp_path / "runs").mkdir()
    shutil.copytree(REPO / "evaluation", tmp_path / "evaluation")
    script = ("import sys; from embedkit.cli.main import main; code = main(sys.argv[1:]); "
              "print(code, 'torch' in sys.modules, 'sentence_transformers' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", script, *argv], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.stdout.split() == ["2", "False", "False"], run.stdout + run.stderr
    assert run.stderr.strip() == "embedkit: error: runs/simcse-55: no such model folder (runs/ has no model folders)"
