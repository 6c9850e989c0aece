"""Every command in the README's fenced shell blocks works as pasted.

Each command is checked by the first row of CHECKS whose prefix it starts with:
- "run": run as pasted (in order, in one scratch folder, so an index built by one line is searched by the
  next), on SMALL_DATA as EMBEDKIT_DATA and with the real default model; it must exit 0;
- "check": run with ``--check`` added (validates and reads the data; for commands that train for hours);
- "parse": its arguments must parse (every option exists and takes the value given): for commands that
  run too long for a test or need the network;
- "make": ``make -n TARGET``: the target exists (CI runs ``make test`` itself).
A README command that matches no row fails ``test_every_readme_command_has_a_check`` with a message saying
how to add one.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import write_beir, write_stsb

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md"]
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")

CHECKS = [  # (prefix, how): the first match wins
    ("make ", "make"),
    ("export ", "env"),  # sets the variable for the commands after it
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
INPUT_FILES = {"texts.txt": "A man is playing a guitar.\nVitamin D and infections.\n\nA third line.\n"}
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
    """(line number, command) for every command in the shell code blocks of ``path``; comments removed,
    backslash continuations joined."""
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
        words = shlex.split(text, comments=True)
        if words:
            found.append((start, shlex.join(words)))
    return found


def check_for(command: str) -> str | None:
    return next((how for prefix, how in CHECKS if command.startswith(prefix)), None)


def readme_commands() -> list[tuple[str, int, str]]:
    return [(name, line, command) for name in DOCUMENTS for line, command in commands(REPO / name)]


def test_every_readme_command_has_a_check():
    unchecked = [f"{name}, line {line}: `{command}`" for name, line, command in readme_commands()
                 if check_for(command) is None]
    assert not unchecked, f"no check for {'; '.join(unchecked)}. To make a command checkable, {HOW_TO_ADD}"


def test_commands_are_extracted_with_line_numbers_and_without_comments(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("text `embedkit not-this`\n```bash\nembedkit eval sts --data stsb   # note\nembedkit a \\\n"
                   "  --b c\n```\n```python\nimport embedkit\n```\n```\nplain block\n```\n", encoding="utf-8")
    assert commands(doc) == [(3, "embedkit eval sts --data stsb"), (4, "embedkit a --b c")]
    assert check_for("embedkit serve --port 8000") is None  # a new command gets HOW_TO_ADD, not a guess
    assert len(readme_commands()) >= 12  # the README's blocks were found


@pytest.mark.e2e
def test_readme_commands_work_as_pasted(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from embedkit.cli.main import build_parser, main

    work = tmp_path / "work"
    work.mkdir()
    for folder in ("training", "evaluation"):  # copies: commands may write into them (suite results)
        shutil.copytree(REPO / folder, work / folder)
    for name, text in INPUT_FILES.items():
        (work / name).write_text(text, encoding="utf-8")
    for folder in MODEL_FOLDERS:
        shutil.copytree(tiny_model_dir, work / folder)
    monkeypatch.setenv("EMBEDKIT_DATA", str(make_small_data(tmp_path / "data")))
    monkeypatch.chdir(work)
    for name, line, command in readme_commands():
        how, argv = check_for(command), shlex.split(command)
        where = f"{name}, line {line}: `{command}`"
        if how == "env":
            variable, _, value = argv[1].partition("=")
            monkeypatch.setenv(variable, value)
        elif how == "make":
            done = subprocess.run(["make", "-n", "-C", str(REPO), *argv[1:]], capture_output=True, text=True)
            assert done.returncode == 0, f"{where}: {done.stderr.strip()}"
        elif how == "parse":
            try:
                build_parser().parse_args(argv[1:])
            except SystemExit:
                pytest.fail(f"{where}: does not parse: {capsys.readouterr().err.strip()}")
        else:
            try:
                code = main(argv[1:] + (["--check"] if how == "check" else []))
            except SystemExit as exc:
                code = exc.code
            output = capsys.readouterr()
            assert code == 0, f"{where}: exit status {code}\n{output.out[-2000:]}\n{output.err[-2000:]}"
