"""Sharded encoding on one machine: split a text file's lines into contiguous shards, encode each in its
own process (on its own device), resume per shard, and merge the shard files into one ``.npy``.

:func:`encode_file_parallel` starts one process per shard (``spawn``: no state is inherited from the
parent); each loads the model, takes its device from ``devices`` (round robin, e.g. ``cuda:0,cuda:1``)
and, on CPUs, an equal share of the usable cores as torch threads. Each shard is a streaming encode
(:mod:`embedkit.encoding.stream`), so an interrupted run resumes every shard where it stopped, and a
shard that finished is not redone. Across machines, :mod:`embedkit.distributed` encodes on Ray.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from embedkit.encoding.stream import DEFAULT_WINDOW, InputScan, encode_file, scan_input
from embedkit.errors import DataError


def shard_range(rows: int, num_shards: int, index: int) -> tuple[int, int]:
    """Lines ``[start, stop)`` of shard ``index`` of ``num_shards`` (sizes differ by at most one)."""
    if num_shards < 1 or not 0 <= index < num_shards:
        raise ValueError(f"shard index {index} out of range for {num_shards} shard(s)")
    base, extra = divmod(rows, num_shards)
    start = index * base + min(index, extra)
    return start, start + base + (1 if index < extra else 0)


def shard_path(out: Path, index: int, num_shards: int) -> Path:
    return out.with_name(out.name + ".shards") / f"shard-{index:05d}-of-{num_shards:05d}.npy"


def merge_npy(parts: Sequence[str | os.PathLike], out: str | os.PathLike) -> tuple[int, int]:
    """Concatenate float32 ``.npy`` files row-wise into ``out`` (atomic), copying 1 MiB at a time."""
    shapes = []
    for part in parts:
        array = np.load(part, mmap_mode="r")
        if array.dtype != np.float32 or array.ndim != 2:
            raise DataError(f"expected a 2-d float32 array, got {array.ndim}-d {array.dtype}", path=part)
        shapes.append((array.shape, array.offset))
        del array
    dims = {shape[1] for shape, _ in shapes}
    if len(dims) != 1:
        raise DataError(f"shards have different widths {sorted(dims)}", path=parts[0])
    rows = sum(shape[0] for shape, _ in shapes)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                     "shape": (rows, dims.pop())})
            for part, (_, offset) in zip(parts, shapes):
                with open(part, "rb") as src:
                    src.seek(offset)
                    shutil.copyfileobj(src, f, 1 << 20)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return rows, int(np.load(out, mmap_mode="r").shape[1])


@dataclass(frozen=True)
class ShardJob:
    model: str
    input_path: str
    out_path: str
    start: int
    stop: int
    device: str | None
    threads: int | None
    options: dict  # role, prompt, batch_size, normalize, backend, window
    scan: InputScan
    max_seq_length: int | None = None


def _done_marker(out: Path) -> Path:
    return out.with_name(out.name + ".done.json")


def _run_shard(job: ShardJob) -> str:
    """Encode one shard in this (child) process; a shard whose finished file matches is skipped."""
    from embedkit.models import load_model, model_fingerprint

    out = Path(job.out_path)
    model = load_model(job.model, device=job.device, max_seq_length=job.max_seq_length)
    identity = {"input_sha256": job.scan.sha256, "start": job.start, "stop": job.stop,
                "model": model_fingerprint(model), **job.options}
    marker = _done_marker(out)
    if out.exists() and marker.exists() and json.loads(marker.read_text(encoding="utf-8")) == identity:
        return str(out)
    marker.unlink(missing_ok=True)
    workers = 1 if job.threads is not None else None
    encode_file(model, job.input_path, out, start=job.start, stop=job.stop, device=job.device, workers=workers,
                threads=job.threads, show_progress=False, scan=job.scan, fingerprint=identity["model"], **job.options)
    marker.write_text(json.dumps(identity), encoding="utf-8")
    return str(out)


def encode_file_parallel(
    model: str,
    input_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    processes: int,
    devices: Sequence[str] | None = None,
    role=None,
    prompt: str | None = None,
    batch_size: int = 32,
    normalize: bool = False,
    backend: str = "torch",
    window: int = DEFAULT_WINDOW,
    max_seq_length: int | None = None,
    keep_shards: bool = False,
) -> tuple[int, int]:
    """Encode ``input_path`` with ``processes`` processes (one shard each) and merge into ``out_path``.

    ``model`` is what :func:`embedkit.models.load_model` takes (each process loads its own copy, its
    inputs cut at ``max_seq_length`` tokens when given).
    ``devices``: one per process, round robin (default: the CPU, cores split evenly). Returns
    ``(rows, dim)`` of the merged file.
    """
    from embedkit.encoding.threads import usable_cpus

    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    source, out = Path(input_path), Path(out_path)
    scan = scan_input(source)
    if scan.rows == 0:
        raise DataError("empty file (no lines)", path=source)
    processes = min(processes, scan.rows)
    devices = list(devices) if devices else [None]
    options = {"role": role, "prompt": prompt, "batch_size": batch_size, "normalize": normalize, "backend": backend,
               "window": window}
    jobs = []
    for index in range(processes):
        start, stop = shard_range(scan.rows, processes, index)
        device = devices[index % len(devices)]
        on_cpu = device is None or str(device).startswith("cpu")
        threads = max(1, usable_cpus() // processes) if on_cpu else None
        jobs.append(ShardJob(model, str(source), str(shard_path(out, index, processes)), start, stop, device,
                             threads, options, scan, max_seq_length))
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        parts = pool.map(_run_shard, jobs, chunksize=1)
    shape = merge_npy(parts, out)
    if not keep_shards:
        shutil.rmtree(out.with_name(out.name + ".shards"), ignore_errors=True)
    return shape
