"""Evaluation suites: a YAML file that lists tasks, validated (pydantic, unknown keys rejected) and resolved.

A task is one of::

    - type: sts            # an STS set in any format load_sts reads (STS-B, SICK, SentEval, CSV/TSV/JSONL)
      data: stsb           # a path, or relative to EMBEDKIT_DATA ...
      split: test
    - type: sts
      glob: "stsb/sts-*.csv"   # ... or a glob under EMBEDKIT_DATA: one task per match
      exclude: ["*train*"]     # fnmatch patterns on the matched path, relative to EMBEDKIT_DATA
    - type: retrieval      # a BEIR folder and the qrels split to score
      data: scifact
      split: test
    - type: mteb           # an MTEB task by its MTEB name; its data comes from the Hugging Face hub
      task: STS12

Every task may set ``label``, its row name in reports; by default a local task is named by its data
(``stsb-test``, ``scifact-test``: the loaded dataset's name, as in its mteb task name), an MTEB task by
its MTEB name.
Any problem is one :class:`~embedkit.errors.ConfigError` line naming the file, the line of the task
and the field, e.g. ``quick.yaml, line 9, field 'tasks[1].type': unknown task type 'foo' ...``.
"""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from embedkit.errors import ConfigError, DataError
from embedkit.paths import data_dir, resolve_data_path

TASK_TYPES = ("sts", "retrieval", "mteb")


class _StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LocalTaskSpec(_StrictModel):
    """A local dataset: ``data`` (one path) or ``glob`` (every match under EMBEDKIT_DATA), and a split."""

    label: Optional[str] = None
    data: Optional[str] = None
    glob: Optional[str] = None
    exclude: list[str] = []
    split: str = "test"

    @model_validator(mode="after")
    def _one_source(self):
        if (self.data is None) == (self.glob is None):
            raise ValueError("give exactly one of 'data' (a path) or 'glob' (a pattern under EMBEDKIT_DATA)")
        if self.glob is not None and self.label is not None:
            raise ValueError("'label' names one task; a glob makes one task per match, each labelled by its data")
        if self.exclude and self.glob is None:
            raise ValueError("'exclude' filters the matches of 'glob'; it means nothing with 'data'")
        return self


class STSTaskSpec(LocalTaskSpec):
    type: Literal["sts"]


class RetrievalTaskSpec(LocalTaskSpec):
    type: Literal["retrieval"]


class MtebTaskSpec(_StrictModel):
    type: Literal["mteb"]
    task: str = Field(min_length=1)  # the MTEB name, e.g. STSBenchmark, SciFact
    label: Optional[str] = None


TaskSpec = Annotated[Union[STSTaskSpec, RetrievalTaskSpec, MtebTaskSpec], Field(discriminator="type")]


class SuiteSpec(_StrictModel):
    name: Optional[str] = None  # default: the file's stem
    description: str = ""
    tasks: list[TaskSpec] = Field(min_length=1)


@dataclass(frozen=True)
class SuiteTask:
    """One resolved task: ``path`` for local data (an existing file or folder), ``mteb_name`` for MTEB tasks."""

    type: str
    label: str | None  # None: named by the loaded data (see the module docstring)
    split: str | None = None
    path: Path | None = None
    mteb_name: str | None = None
    source: str = ""  # where the suite declared it ("quick.yaml, line 9"), for error messages


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    path: Path
    tasks: list[SuiteTask]


def load_suite(path: str | os.PathLike) -> Suite:
    """Read, validate and resolve a suite file. Local data must exist; globs must match something."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such suite file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a suite is a YAML mapping with a 'tasks' list, got {type(raw).__name__}")
    lines = _task_lines(text)
    try:
        spec = SuiteSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, path, lines)) from None

    tasks: list[SuiteTask] = []
    for index, task in enumerate(spec.tasks):
        source = _where(path, lines, index)
        tasks.extend(_resolve(task, source, index))
    return Suite(name=spec.name or path.stem, description=spec.description, path=path, tasks=tasks)


def _resolve(task, source: str, index: int) -> list[SuiteTask]:
    if isinstance(task, MtebTaskSpec):
        return [SuiteTask("mteb", task.label or task.task, mteb_name=task.task, source=source)]
    if task.data is not None:
        try:
            found = resolve_data_path(task.data)
        except DataError as exc:
            raise ConfigError(f"{source}, field 'tasks[{index}].data': {exc}") from None
        return [SuiteTask(task.type, task.label, task.split, found, source=source)]
    root = data_dir()
    matches = [p for p in sorted(root.glob(task.glob))
               if not any(fnmatch.fnmatch(p.relative_to(root).as_posix(), pattern) for pattern in task.exclude)]
    if not matches:
        raise ConfigError(f"{source}, field 'tasks[{index}].glob': {task.glob!r} matches no data under "
                          f"EMBEDKIT_DATA={root}" + (f" (after exclude {task.exclude})" if task.exclude else ""))
    return [SuiteTask(task.type, None, task.split, p, source=source) for p in matches]


def _task_lines(text: str) -> list[int]:
    """The 1-based line of each entry of the top-level ``tasks`` list (empty if the shape is unexpected)."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return []
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if getattr(key, "value", None) == "tasks" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _where(path: Path, lines: list[int], index: int | None) -> str:
    if index is not None and index < len(lines):
        return f"{path}, line {lines[index]}"
    return str(path)


def _one_line(exc: ValidationError, path: Path, lines: list[int]) -> str:
    """The first validation error as one line: file, line of the task, dotted field, and what is allowed."""
    err = exc.errors()[0]
    loc = list(err["loc"])
    index = loc[1] if len(loc) > 1 and loc[0] == "tasks" and isinstance(loc[1], int) else None
    if index is not None and len(loc) > 2 and loc[2] in TASK_TYPES:
        del loc[2]  # pydantic names the union member; the user wrote a list entry
    field = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
    kind = err["type"]
    if kind == "union_tag_invalid":
        message = (f"unknown task type {err['ctx']['tag']!r}; a task's type is one of {', '.join(TASK_TYPES)}")
        field += ".type"
    elif kind == "union_tag_not_found":
        message = f"missing 'type'; a task's type is one of {', '.join(TASK_TYPES)}"
        field += ".type"
    elif kind == "extra_forbidden":
        message = "unknown key"
    elif kind == "missing":
        message = "missing key"
    else:
        message = err["msg"].removeprefix("Value error, ")
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{_where(path, lines, index)}, field {field!r}: {message}{suffix}"
