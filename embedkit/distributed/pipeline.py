"""``encode_on_ray``: embed a corpus on a Ray cluster into an embeddings folder, resumably.

The driver plans (reads the input once for its checksum and the parts' offsets), clears the shards
of an earlier run with other input or options, and hands the parts to a Ray Data actor pool
(:class:`embedkit.distributed.actor.PartEncoder`, one model per actor), which keeps the shards already
written under the same identity (model included) and embeds the rest. Ray Data schedules the parts over
the actors as they free up, streams, and restarts an actor (and redoes its part) when its worker dies.
A driver that dies takes its actors with it; running the same call again does only what is missing.

Why the parts are embedkit's and not Ray Data's blocks: Ray Data's readers cut blocks by size at run
time, carry no row positions, and its writers name files per run, so neither the order of rows nor a
resumed output could be reproduced; its row checkpointing (``ray.data.checkpoint``) skips rows by an id
column but checks nothing about the model or options that made them. Here a part is a fixed range of
rows, a part's shard is written whole or not at all, and the identity (input, model, prompt, options)
decides whether a finished shard may be kept, as ``embedkit encode --stream`` decides for windows.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedkit.distributed import output
from embedkit.distributed.actor import EncodeJob, ModelSpec, PartEncoder, raise_reported, resolve_backend_on_node
from embedkit.distributed.cluster import ActorPlan, connected, plan_actors
from embedkit.distributed.output import EmbeddingsFolder
from embedkit.distributed.sources import plan_input, part_to_json, resolve_source
from embedkit.encoding.backends import AUTO, DEFAULT_BACKEND, check_backend
from embedkit.errors import ConfigError, DataError, EmbedkitError

IDENTITY_VERSION = 1


@dataclass(frozen=True)
class RayEncodeResult:
    path: Path
    rows: int
    dim: int
    parts: int
    resumed_parts: int  # parts an earlier run had finished, kept (0 = fresh start)
    actors: str


def encode_on_ray(
    input_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: str = "default",
    address: str | None = None,
    role: str | None = None,
    prompt: str | None = None,
    batch_size: int = 32,
    normalize: bool = False,
    device: str | None = None,
    backend: str = DEFAULT_BACKEND,
    max_seq_length: int | None = None,
    domain: str | None = None,
    text_column: str = "text",
    id_column: str | None = None,
    rows_per_part: int | None = None,
    cpus_per_actor: int | None = None,
    actors: int | None = None,
    resume: bool = True,
    show_progress: bool = True,
) -> RayEncodeResult:
    """Embed ``input_path`` (text, BEIR JSONL or Parquet; see :mod:`embedkit.distributed.sources`) on the
    Ray cluster at ``address`` into the folder ``out`` (see :mod:`embedkit.distributed.output`).

    ``model`` is what :func:`embedkit.models.load_model` takes, loaded by every actor (so it must exist
    on every node). The embedding options are those of :func:`embedkit.encoding.encode`. ``rows_per_part``
    fixes the parts (default from the row count only); ``cpus_per_actor``/``actors`` size the pool
    (default: see :func:`embedkit.distributed.cluster.plan_actors`). ``resume=False`` starts over.
    """
    check_backend(backend)
    for name, value in (("batch_size", batch_size), ("max_seq_length", max_seq_length),
                        ("cpus_per_actor", cpus_per_actor), ("actors", actors)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")
    if backend == "sentence-transformers":
        raise ConfigError("backend 'sentence-transformers' is the reference path; on Ray use an embedkit backend")
    folder = Path(out)
    _check_folder(folder)
    source = resolve_source(input_path, text_column, id_column)
    plan = plan_input(source, rows_per_part)
    local = Path(str(model)).expanduser()
    spec = ModelSpec(str(local.resolve()) if local.exists() else str(model), device, max_seq_length, domain)
    with connected(address):
        pool = plan_actors(device, cpus_per_actor, actors)
        if backend == AUTO:
            backend = _resolve_auto(spec, pool)
        identity = {"version": IDENTITY_VERSION, "input_sha256": plan.sha256, "rows": plan.rows,
                    "format": source.format, "text_column": source.text_column, "id_column": source.id_column,
                    "rows_per_part": plan.rows_per_part, "role": role, "prompt": prompt,
                    "normalize": normalize, "backend": backend, "batch_size": batch_size, "domain": domain,
                    "max_seq_length": max_seq_length, "device": "cuda" if pool.num_gpus else "cpu"}
        folder.mkdir(parents=True, exist_ok=True)
        _clear_other_runs(folder, identity, resume)
        manifest = {"identity": identity, "rows": plan.rows, "input": [str(Path(f).resolve()) for f in source.files],
                    "parts": [{"file": output.part_name(p.index), "start": p.start, "stop": p.stop}
                              for p in plan.parts], "complete": False}
        output.write_manifest(folder, manifest)
        pool = ActorPlan(min(pool.actors, len(plan.parts)), pool.num_cpus, pool.num_gpus, pool.workers)
        job = EncodeJob(spec, role, prompt, batch_size, normalize, backend, pool.workers, source.as_dict(),
                        str(folder.resolve()), identity)
        summaries = _run_pool(plan.parts, job, pool, plan.rows, show_progress)
    facts = _one_model(summaries, str(model))
    sha = output.identity_hash({**identity, "model": facts["fingerprint"], "prompt": facts["prompt"]})
    missing = [p.index for p in plan.parts if not output.finished_part(folder, p.index, p.rows, sha)]
    if missing:
        raise DataError(f"parts {missing[:5]} were not written; run the same command again", path=folder)
    output.remove_temporaries(folder)
    model_info = {key: facts[key] for key in ("name", "fingerprint", "prompt")} | {"source": facts["model_source"]}
    output.write_manifest(folder, {**manifest, "identity_sha": sha, "dim": facts["dim"], "model": model_info,
                                   "complete": True})
    kept = sum(bool(s["kept"]) for s in summaries)
    return RayEncodeResult(folder, plan.rows, facts["dim"], len(plan.parts), kept, pool.describe())


def _resolve_auto(spec: ModelSpec, pool: ActorPlan) -> str:
    """``backend='auto'`` chosen once, in a task shaped like an actor (its CPUs or GPU), and said on stderr:
    each node choosing for itself could mix backends, and so embeddings, within one output."""
    import dataclasses
    import sys

    import ray

    task = ray.remote(resolve_backend_on_node).options(num_cpus=pool.num_cpus, num_gpus=pool.num_gpus or None)
    try:
        backend = ray.get(task.remote(dataclasses.asdict(spec), AUTO))
    except Exception as exc:
        cause = _embedkit_cause(exc)
        if cause is not None:
            raise cause from None
        raise
    print(f"backend auto -> {backend} (chosen on one node, used by all; --backend torch for exact float32)",
          file=sys.stderr)
    return backend


def _check_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise DataError("exists and is not a folder; --out names the folder of Parquet shards", path=folder)
    if folder.is_dir() and any(folder.iterdir()):
        output.read_manifest(folder)  # refuses a folder that is not an embeddings folder
        if not (folder / output.MANIFEST).exists():
            raise DataError("not empty and not an embeddings folder; refusing to write into it", path=folder)


def _clear_other_runs(folder: Path, identity: dict, resume: bool) -> None:
    """Remove the shards of an earlier run with other input or options (or all, without ``resume``).

    Shards of a run with the same input and options are left for the actors, which keep those their
    model made (same fingerprint) and redo the others.
    """
    previous = output.read_manifest(folder)
    if previous is not None and resume and previous.get("identity") == identity:
        output.remove_temporaries(folder)
        return
    if previous is not None and resume:
        changed = sorted(k for k in identity if (previous.get("identity") or {}).get(k) != identity[k])
        print(f"{folder}: starting over, the earlier run differs in {', '.join(changed)}")
    output.remove_parts(folder)


def _one_model(summaries: list[dict], model: str) -> dict:
    """The model facts every actor reported; different fingerprints mean nodes hold different models."""
    from embedkit.errors import ModelError

    nodes: dict[tuple, set[str]] = {}
    for s in summaries:
        nodes.setdefault((s["fingerprint"], s["prompt"], s["dim"]), set()).add(s["node"])
    if len(nodes) != 1:
        found = "; ".join(f"fingerprint {fingerprint} on {', '.join(sorted(hosts))}"
                          for (fingerprint, _, _), hosts in sorted(nodes.items()))
        raise ModelError(f"the nodes' copies of model {model!r} differ ({found}); every node must hold the same "
                         "model, then run the same command again")
    return summaries[0]


def _run_pool(parts, job: EncodeJob, pool: ActorPlan, total_rows: int, show_progress: bool) -> list[dict]:
    """Every part through the actor pool (finished ones are only checked); one summary per part."""
    import ray.data
    from tqdm.auto import tqdm

    items = [{"part": part_to_json(p)} for p in parts]
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        PartEncoder, fn_constructor_kwargs={"job": job.as_dict()}, batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=pool.actors, max_tasks_in_flight_per_actor=1),
        num_cpus=pool.num_cpus, num_gpus=pool.num_gpus or None)
    summaries = []
    with tqdm(total=total_rows, desc=f"encode on Ray ({pool.describe()})", unit="text",
              disable=not show_progress) as bar:
        try:
            for row in dataset.iter_rows():
                summary = {key: value.item() if hasattr(value, "item") else value for key, value in row.items()}
                if summary["error"]:
                    raise_reported(summary["error"])
                summaries.append(summary)
                bar.update(int(row["rows"]))
        except Exception as exc:
            cause = _embedkit_cause(exc)
            if cause is not None:
                raise cause from None
            raise
    return summaries


def _embedkit_cause(exc: BaseException) -> EmbedkitError | None:
    """The embedkit error behind Ray's wrappers (RayTaskError, Ray Data's UserCodeException), if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        cause = getattr(exc, "cause", None)  # RayTaskError(X) is also an X, but prints a traceback
        if isinstance(cause, BaseException):
            exc = cause
            continue
        if isinstance(exc, EmbedkitError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def encode_texts_on_ray(texts: list[str], work: str | os.PathLike, **options) -> tuple[np.ndarray, str]:
    """Embed in-memory ``texts`` on Ray (options as :func:`encode_on_ray`); returns the embeddings in order and
    the fingerprint of the model that made them.

    The texts go to the cluster as a Parquet file under ``work`` (a folder every node can read), keyed by
    their content, so an interrupted call resumes like any other; its files are removed on success.
    """
    import contextlib
    import hashlib
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode("utf-8", "surrogatepass") + b"\0")
    mine = Path(work) / h.hexdigest()[:16]  # calls with other texts share ``work`` without meeting
    source = mine / "texts.parquet"
    if not source.exists():
        mine.mkdir(parents=True, exist_ok=True)
        tmp = mine / f".{source.name}.tmp"
        pq.write_table(pa.table({"text": pa.array(texts, type=pa.string())}), tmp)
        os.replace(tmp, source)
    folder = EmbeddingsFolder.open(encode_on_ray(source, mine / "embeddings", **options).path)
    _, embeddings = folder.load()
    fingerprint = folder.model["fingerprint"]
    shutil.rmtree(mine, ignore_errors=True)
    with contextlib.suppress(OSError):
        Path(work).rmdir()  # when no other call is using it
    return embeddings, fingerprint
