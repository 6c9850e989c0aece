"""Run a suite: every task for every model through ``mteb.evaluate``, resumable, traceable.

- Local tasks become mteb tasks over the loaded data (:mod:`embedkit.evaluation.tasks`); MTEB tasks
  by name come from mteb's registry and load their data from the hub.
- Models are wrapped in :class:`~embedkit.evaluation.encoder.MtebEncoder`: embeddings go through the
  on-disk embedding cache (an interrupted encode keeps its finished chunks; nothing is encoded twice)
  and results are filed under the model's name and weight fingerprint.
- A task whose result already exists for this model fingerprint and this data is not run again, so
  an interrupted suite continues where it stopped. mteb's own result cache is not used: it is keyed
  by names only and its writes are not atomic (see :mod:`embedkit.evaluation.results`).
- An MTEB task that cannot get its data (offline) fails with one line; the other tasks still run.
"""
from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

from embedkit.errors import ConfigError, DataError, EmbedkitError
from embedkit.evaluation.suite import Suite, SuiteTask

LOCAL_PREFIX = "embedkit-"  # the prefix tasks.py gives local mteb task names


@dataclass
class PreparedTask:
    """A suite task turned into an mteb task, with what its results record about the data."""

    spec: SuiteTask
    task: object  # an mteb AbsTask
    label: str
    data: str  # the local path, or hf:<dataset path> for MTEB tasks
    data_checksum: str
    recorder: object  # PerItemRecorder

    @property
    def name(self) -> str:
        return self.task.metadata.name

    @property
    def revision(self) -> str:
        return self.task.metadata.revision


@dataclass
class TaskOutcome:
    model: str
    fingerprint: str
    label: str
    task_name: str
    status: str  # "ran", "done before" or "failed"
    metric: str | None = None
    score: float | None = None  # the main score, 0-1
    seconds: float = 0.0
    error: str | None = None
    result_path: str | None = None


@dataclass
class SuiteRun:
    results_dir: Path
    outcomes: list[TaskOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[TaskOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def prepare_tasks(suite: Suite) -> list[PreparedTask]:
    """Load every local dataset and look up every MTEB name before anything runs, so a bad file or an
    unknown name fails in seconds, with one line, not after an hour of encoding."""
    kept: list[PreparedTask] = []
    by_name: dict[str, PreparedTask] = {}
    for p in (_prepare(spec) for spec in suite.tasks):
        other = by_name.setdefault(p.name, p)
        if other is p:
            kept.append(p)
        elif other.revision != p.revision:
            raise ConfigError(f"{p.spec.source}: this task and the one at {other.spec.source} both become mteb task "
                              f"{p.name!r} but hold different data; rename one of the data files or folders")
        # else: the same data listed twice is one task
    labels: dict[str, PreparedTask] = {}
    for p in kept:
        if labels.setdefault(p.label, p) is not p:
            raise ConfigError(f"{p.spec.source}: two tasks are labelled {p.label!r}; give each a distinct 'label'")
    return kept


def _prepare(spec: SuiteTask) -> PreparedTask:
    from embedkit.evaluation._mteb import import_mteb
    from embedkit.evaluation.per_item import PerItemRecorder

    mteb = import_mteb()
    if spec.type == "mteb":
        try:
            task = mteb.get_task(spec.mteb_name)
        except KeyError as exc:
            detail = str(exc.args[0] if exc.args else "").removeprefix("KeyError: ")
            raise ConfigError(f"{spec.source}: unknown MTEB task {spec.mteb_name!r}: {detail}") from None
        dataset = task.metadata.dataset or {}
        return PreparedTask(spec, task, spec.label or spec.mteb_name, f"hf:{dataset.get('path', '?')}",
                            str(dataset.get("revision") or task.metadata.revision), PerItemRecorder(task))

    from embedkit.data import data_checksum, load_beir, load_sts
    from embedkit.evaluation.tasks import retrieval_task, sts_task

    try:
        if spec.type == "sts":
            task = sts_task(load_sts(spec.path, split=spec.split), split=spec.split)
        else:
            task = retrieval_task(load_beir(spec.path, split=spec.split))
        checksum = data_checksum(spec.path, spec.split)
    except DataError as exc:
        raise DataError(f"{exc} (task at {spec.source})") from None
    label = spec.label or task.metadata.name.removeprefix(LOCAL_PREFIX)
    return PreparedTask(spec, task, label, str(spec.path), checksum, PerItemRecorder(task))


def run_suite(suite: Suite, models: list[str], out: str | os.PathLike, *, batch_size: int = 32,
              device: str | None = None, rerun: bool = False, command: list[str] | None = None,
              show_progress: bool = True, log: Callable[[str], None] | None = None,
              error_log: Callable[[str], None] | None = None) -> SuiteRun:
    """Evaluate ``models`` (names or paths for :func:`embedkit.models.load_model`) on every suite task.

    ``rerun`` re-runs tasks that already have a result. Failures of MTEB tasks (and of local tasks
    with an :class:`~embedkit.errors.EmbedkitError`) are logged as one line each and recorded as
    ``failed`` outcomes; anything else is a bug and propagates. Every model is checked
    (:func:`embedkit.models.check_model`) before any task runs.
    """
    from tqdm.auto import tqdm

    from embedkit.encoding import EmbeddingCache
    from embedkit.evaluation.encoder import MtebEncoder
    from embedkit.evaluation.results import load_finished, task_result_path
    from embedkit.models import check_model, load_model, model_name

    for model_spec in models:  # a model that cannot load fails now, not after the models before it have run
        check_model(model_spec)
    log = log or tqdm.write  # lines above the progress bar, not through it
    error_log = error_log or (lambda line: tqdm.write(line, file=sys.stderr))
    out = Path(out)
    tasks = prepare_tasks(suite)
    run = SuiteRun(results_dir=out)
    cache = EmbeddingCache()
    with tqdm(total=len(models) * len(tasks), desc=f"suite {suite.name}", unit="task",
              disable=not show_progress) as bar:
        for model_spec in models:
            model = load_model(model_spec, device=device)
            # None: cached_encode shows a bar only for long encodes (a corpus), not for every small call
            encoder = MtebEncoder(model, batch_size=batch_size, device=device, cache=cache,
                                  show_progress=None if show_progress else False)
            meta = encoder.mteb_model_meta
            for prepared in tasks:
                bar.set_postfix_str(f"{model_name(model)} · {prepared.label}")
                path = task_result_path(out, meta, prepared.name)
                stored = None if rerun else load_finished(path, prepared.revision, encoder.fingerprint)
                if stored is not None:
                    outcome = TaskOutcome(meta.name, encoder.fingerprint, prepared.label, prepared.name, "done before",
                                          stored.metric, stored.score, result_path=str(path))
                else:
                    outcome = _run_one(encoder, meta, model_spec, prepared, suite, out, batch_size, device, command)
                run.outcomes.append(outcome)
                bar.update(1)
                if outcome.status == "failed":
                    error_log(f"embedkit: error: {outcome.error}")
                else:
                    log(_outcome_line(outcome))
    return run


def _run_one(encoder, meta, model_spec: str, prepared: PreparedTask, suite: Suite, out: Path, batch_size: int,
             device: str | None, command: list[str] | None) -> TaskOutcome:
    from embedkit.evaluation._mteb import QUIET_ENCODE_KWARGS, import_mteb, no_datasets_bars
    from embedkit.evaluation.results import write_task_result

    mteb = import_mteb()
    outcome = TaskOutcome(meta.name, encoder.fingerprint, prepared.label, prepared.name, "failed")
    prepared.recorder.reset()
    started = time.perf_counter()
    try:
        with no_datasets_bars():
            result = mteb.evaluate(encoder, prepared.task, cache=None, overwrite_strategy="always", co2_tracker=False,
                                   raise_error=True, show_progress_bar=False,
                                   encode_kwargs={"batch_size": batch_size, **QUIET_ENCODE_KWARGS})
    except EmbedkitError as exc:
        outcome.error = f"{prepared.spec.source}: task {prepared.label!r}: {exc}"
        return outcome
    except Exception as exc:  # noqa: BLE001 - hub tasks fail in many ways offline; each is one line
        if prepared.spec.type != "mteb":
            raise
        outcome.error = _mteb_failure(prepared, exc)
        return outcome
    if result.exceptions or not result.task_results:
        outcome.error = f"{prepared.spec.source}: task {prepared.label!r}: " + "; ".join(
            str(e.exception).splitlines()[0] for e in result.exceptions)
        return outcome
    task_result = result.task_results[0]
    outcome.seconds = time.perf_counter() - started
    provenance = _provenance(prepared, meta, encoder.fingerprint, model_spec, suite, batch_size, device, command,
                             outcome.seconds)
    path = write_task_result(out, meta, task_result, provenance, prepared.recorder.record())
    outcome.status, outcome.metric = "ran", prepared.task.metadata.main_score
    outcome.score, outcome.result_path = float(task_result.get_score()), str(path)
    return outcome


def _mteb_failure(prepared: PreparedTask, exc: Exception) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
                  for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    why = ("the hub is switched off (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)" if offline
           else "its data could not be fetched from the Hugging Face hub")
    return (f"{prepared.spec.source}: MTEB task {prepared.spec.mteb_name!r} skipped: {why} "
            f"({type(exc).__name__}: {first}); run it online, or evaluate local data with type sts or retrieval")


def _provenance(prepared: PreparedTask, meta, fingerprint: str, model_spec: str, suite: Suite, batch_size: int,
                device: str | None, command: list[str] | None, seconds: float) -> dict:
    return {
        "label": prepared.label,
        "task_type": prepared.task.metadata.type,
        "main_score": prepared.task.metadata.main_score,
        "split": prepared.spec.split if prepared.spec.type != "mteb" else list(prepared.task.eval_splits),
        "data": prepared.data,
        "data_checksum": prepared.data_checksum,
        "dataset_revision": prepared.revision,
        "model": meta.name,
        "model_argument": model_spec,
        "model_fingerprint": fingerprint,
        "suite": str(suite.path),
        "suite_name": suite.name,
        "command": shlex.join(command if command is not None else sys.argv),
        "versions": {"embedkit": _version("embedkit"), "mteb": _version("mteb"),
                     "sentence-transformers": _version("sentence-transformers"), "torch": _version("torch"),
                     "python": platform.python_version()},
        "batch_size": batch_size,
        "device": device,
        "seconds": round(seconds, 3),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _outcome_line(o: TaskOutcome) -> str:
    score = f"{o.metric} {100 * o.score:.2f}" if o.score is not None else ""
    when = f"{o.seconds:.1f} s" if o.status == "ran" else o.status
    return f"{o.model}  {o.label}  {score}  ({when})"
