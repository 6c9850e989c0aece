"""Every command in the README's fenced shell blocks works as pasted.

Each command is checked by the first row of CHECKS whose prefix it starts with:
- "run": run as pasted (in order, in one scratch folder, so an index built by one line is searched by the
  next), on SMALL_DATA as EMBEDKIT_DATA and with the real default model; it must exit 0;
- "shell": run by bash as written (redirections included); ``curl`` gets ``--fail-with-body`` so that an
  HTTP error status fails the check;
- "serve": the server is started in the background as written, but on a free port (the README's 8000 is
  replaced, here and in the commands after it: the machine is shared); the commands after it talk to it,
  and it is stopped at the end;
- "check": run with ``--check`` added (validates and reads the data; for commands that train for hours);
- "parse": its arguments must parse (every option exists and takes the value given): for commands that
  run too long for a test or need the network;
- "make": ``make -n TARGET``: the target exists (CI runs ``make test`` itself).
A README command that matches no row fails ``test_every_readme_command_has_a_check`` with a message saying
how to add one. ``test_readme_commands_parse`` (fast) parses every embedkit command; the e2e test runs them.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import write_beir, write_stsb

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md"]
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")

CHECKS = [  # (prefix, how): the first match wins
    ("make ", "make"),
    ("export ", "env"),  # sets the variable for the commands after it
    ("python -c ", "shell"),
    ("curl ", "shell"),
    ("embedkit serve", "serve"),
    ("embedkit data get", "parse"),  # downloads from the Hugging Face hub, which tests cannot reach
    ("embedkit demo", "parse"),  # encodes all of SciFact: minutes
    ("embedkit train", "check"),  # trains for minutes to hours
    ("embedkit data list", "run"),
    ("embedkit encode", "run"),
    ("embedkit eval", "run"),
    ("embedkit index", "run"),
    ("embedkit mine", "run"),
    ("embedkit report", "run"),
    ("embedkit cache info", "run"),
    ("embedkit --version", "run"),
]
HOW_TO_ADD = (
    "add a row (prefix, how) to CHECKS in tests/test_readme_commands.py: 'run' if the command finishes in "
    "seconds on the small data folder (SMALL_DATA / INPUT_FILES / MODEL_FOLDERS there: add what it reads), "
    "'check' if it has a --check option that validates without the long work, 'parse' if it runs too long "
    "or needs the network (its arguments are still checked)")

# The scratch folder the commands run in: files the README's commands name, and stand-ins for model folders
# that the README makes with hours of training (the tiny random model, copied).
INPUT_FILES = {"texts.txt": "A man is playing a guitar.\nVitamin D and infections.\n\nA third line.\n",
               "new.jsonl": '{"_id": "new-1", "title": "A new study", "text": "Vitamin D lowers infection rates."}\n'}
README_PORT = "8000"
MODEL_FOLDERS = ["runs/simcse-unsup"]
SENTENCES = [f"Sentence number {i} is about {w}." for i, w in enumerate("cells genes plants music rivers".split())]


def make_small_data(root: Path) -> Path:
    """EMBEDKIT_DATA for the commands: the shared folder's layout (what README and recipes name), tiny."""
    (root / "stsb").mkdir(parents=True)
    for split in ("train", "dev", "test"):
        write_stsb(root / "stsb" / f"sts-{split}.csv")
    for split in ("train", "test", "dev", "train-fit"):
        write_beir(root / "scifact", split=split)
    (root / "wiki").mkdir()
    (root / "wiki" / "wiki1m_for_simcse.first11914.txt").write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    (root / "nli").mkdir()
    rows = [f"{a},{b},{c}" for a, b, c in zip(SENTENCES, SENTENCES[1:], SENTENCES[2:])]
    (root / "nli" / "snli_devtest_triplets.csv").write_text("sent0,sent1,hard_neg\n" + "\n".join(rows) + "\n",
                                                            encoding="utf-8")
    return root


def commands(path: Path) -> list[tuple[int, str]]:
    """(line number, command as written) for every command in the shell code blocks of ``path``; backslash
    continuations joined, comment-only and blank lines left out."""
    found, block, pending = [], None, None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fence = re.match(r"\s*```(\w*)", line)
        if fence:
            block = None if block is not None else fence.group(1)
            continue
        if block not in SHELL_LANGUAGES:
            continue
        text = line.strip()
        if pending is not None:
            start, text = pending[0], pending[1] + " " + text
            pending = None
        else:
            start = number
        if text.endswith("\\"):
            pending = (start, text[:-1].strip())
            continue
        if words(text):
            found.append((start, text))
    return found


def words(command: str) -> list[str]:
    """The command's words as the shell splits them, its trailing comment removed."""
    return shlex.split(command, comments=True)


def check_for(command: str) -> str | None:
    return next((how for prefix, how in CHECKS if command.startswith(prefix)), None)


def readme_commands() -> list[tuple[str, int, str]]:
    return [(name, line, command) for name in DOCUMENTS for line, command in commands(REPO / name)]


def test_every_readme_command_has_a_check():
    unchecked = [f"{name}, line {line}: `{command}`" for name, line, command in readme_commands()
                 if check_for(command) is None]
    assert not unchecked, f"no check for {'; '.join(unchecked)}. To make a command checkable, {HOW_TO_ADD}"


def test_commands_are_extracted_with_line_numbers_as_written(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("text `embedkit not-this`\n```bash\nembedkit eval sts --data stsb   # note\n# only a comment\n"
                   "embedkit a \\\n  --b c > out.txt\n```\n```python\nimport embedkit\n```\n```\nplain block\n```\n",
                   encoding="utf-8")
    assert commands(doc) == [(3, "embedkit eval sts --data stsb   # note"), (5, "embedkit a --b c > out.txt")]
    assert words(commands(doc)[0][1]) == ["embedkit", "eval", "sts", "--data", "stsb"]
    assert check_for("embedkit frobnicate --port 8000") is None  # a new command gets HOW_TO_ADD, not a guess
    assert len(readme_commands()) >= 12  # the README's blocks were found


def test_readme_commands_parse(capsys):
    """Fast (no model, no data): every embedkit command's options exist and take the values given."""
    from embedkit.cli.main import build_parser

    parser = build_parser()
    for name, line, command in readme_commands():
        argv = words(command)
        if argv[0] == "embedkit":
            try:
                parser.parse_args(argv[1:])
            except SystemExit:
                pytest.fail(f"{name}, line {line}: `{command}` does not parse: {capsys.readouterr().err.strip()}")


def _auto_backend_already_calibrated() -> None:
    """Record "torch" as `--backend auto`'s choice for the default model in this test's EMBEDKIT_CACHE, as a
    machine that ran `embedkit encode` before has one: the calibration costs one to four minutes on a shared
    2-core machine and is tested in tests/encoding/test_fast_backends.py."""
    import json

    from embedkit.encoding.auto import _exportable, candidates, choice_path
    from embedkit.machine import cpu_info
    from embedkit.models import load_model

    model = load_model("default", device="cpu")
    path = choice_path(model, "cpu", candidates(cpu_info(), "cpu", _exportable(model)))
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"backend": "torch", "model": "default", "device": "cpu"}), encoding="utf-8")


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _start_server(argv: list[str], port: str, work: Path, where: str) -> subprocess.Popen:
    """``embedkit serve`` as written but on ``port``, with this checkout's code; returns once /health answers."""
    import httpx

    argv = [port if previous == "--port" else word for previous, word in zip([""] + argv, argv)]
    server = subprocess.Popen([sys.executable, "-m", "embedkit.cli.main", *argv[1:]], cwd=work,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"{where}: the server exited with status {server.returncode}\n{server.stdout.read()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    server.kill()
    pytest.fail(f"{where}: the server did not answer /health within 180 s")


@pytest.mark.e2e
def test_readme_commands_work_as_pasted(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from embedkit.cli.main import main

    work = tmp_path / "work"
    work.mkdir()
    for folder in ("training", "evaluation"):  # copies: commands may write into them (suite results)
        shutil.copytree(REPO / folder, work / folder)
    for name, text in INPUT_FILES.items():
        (work / name).write_text(text, encoding="utf-8")
    for folder in MODEL_FOLDERS:
        shutil.copytree(tiny_model_dir, work / folder)
    monkeypatch.setenv("EMBEDKIT_DATA", str(make_small_data(tmp_path / "data")))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.chdir(work)
    _auto_backend_already_calibrated()
    port, servers = README_PORT, []
    try:
        for name, line, command in readme_commands():
            how, argv = check_for(command), words(command)
            where = f"{name}, line {line}: `{command}`"
            if how == "env":
                variable, _, value = argv[1].partition("=")
                monkeypatch.setenv(variable, value)
            elif how == "make":
                done = subprocess.run(["make", "-n", "-C", str(REPO), *argv[1:]], capture_output=True, text=True)
                assert done.returncode == 0, f"{where}: {done.stderr.strip()}"
            elif how == "parse":
                pass  # test_readme_commands_parse
            elif how == "serve":
                port = _free_port()
                servers.append(_start_server(argv, port, work, where))
            elif how == "shell":
                text = command.replace(f":{README_PORT}", f":{port}")
                text = re.sub(r"^curl ", "curl --fail-with-body ", text)
                done = subprocess.run(["bash", "-c", text], cwd=work, capture_output=True, text=True, timeout=120)
                assert done.returncode == 0, f"{where}: exit status {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            else:
                try:
                    code = main(argv[1:] + (["--check"] if how == "check" else []))
                except SystemExit as exc:
                    code = exc.code
                output = capsys.readouterr()
                assert code == 0, f"{where}: exit status {code}\n{output.out[-2000:]}\n{output.err[-2000:]}"
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=60)
