"""Streaming encode of a text file (one text a line) larger than memory into a ``.npy`` file, resumable.

sentence-transformers' ``encode`` holds every input and every embedding in memory at once (its users
report running out of memory at about 1M of 8M documents). Here the input is read lazily, a window
of lines at a time; each window is encoded by the engine straight into its rows of the output, mapped
into memory only while it is written (so the process's resident memory stays flat whatever the file
size), then flushed; and a small state file records how many windows are done.

Files, for an output ``OUT.npy``:

- ``OUT.npy.partial``: the output being written (a complete ``.npy`` header, rows filled window by
  window); renamed to ``OUT.npy`` when the last window is done.
- ``OUT.npy.partial.json``: the run's identity (input checksum, model fingerprint, prompt, options
  that change the numbers) and the number of windows done. A rerun with the same identity resumes
  after the last finished window; windows and batches are cut the same way, so the resumed file is
  byte-identical to one written in a single run. A rerun with a different identity starts over.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from embedkit.encoding.auto import resolve_backend
from embedkit.encoding.backends import DEFAULT_BACKEND, check_backend
from embedkit.encoding.engine import Role, encode_into, resolve_prompt, understands
from embedkit.errors import DataError

DEFAULT_WINDOW = 16384
STATE_VERSION = 1


@dataclass(frozen=True)
class InputScan:
    rows: int
    sha256: str


def scan_input(path: Path) -> InputScan:
    """Line count (as :func:`embedkit.data.read_lines` counts them) and checksum, reading 1 MiB at a time."""
    h = hashlib.sha256()
    newlines, size, last = 0, 0, b""
    try:
        f = path.open("rb")
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", path=path) from None
    with f:
        while block := f.read(1 << 20):
            h.update(block)
            newlines += block.count(b"\n")
            size += len(block)
            last = block[-1:]
    rows = newlines + (1 if size and last != b"\n" else 0)
    return InputScan(rows, h.hexdigest())


def iter_rows(path: Path, start: int, stop: int) -> Iterator[str]:
    """Lines ``start`` (0-based) up to ``stop`` of ``path``, read lazily."""
    from embedkit.data.textio import iter_lines

    for number, line in iter_lines(path):
        if number - 1 >= stop:
            return
        if number - 1 >= start:
            yield line


def _windows(path: Path, start: int, stop: int, window: int, skip: int) -> Iterator[tuple[int, list[str]]]:
    """(first row relative to ``start``, texts) for each window after the first ``skip`` windows."""
    texts: list[str] = []
    first = skip * window
    for line in iter_rows(path, start + first, stop):
        texts.append(line)
        if len(texts) == window:
            yield first, texts
            first, texts = first + window, []
    if texts:
        yield first, texts


def _write_json_atomic(path: Path, obj: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _embedding_width(model, prompt: str, normalize: bool, device, backend: str) -> int:
    return encode_into(model, ["width probe"], prompt=prompt, batch_size=1, normalize=normalize, device=device,
                       backend=backend, workers=1).shape[1]


@dataclass(frozen=True)
class StreamResult:
    path: Path
    rows: int
    dim: int
    resumed_windows: int  # windows found done by an earlier run (0 = fresh start)


def encode_file(
    model,
    input_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    role: Role | None = None,
    prompt: str | None = None,
    batch_size: int = 32,
    normalize: bool = False,
    device: str | None = None,
    backend: str = DEFAULT_BACKEND,
    workers: int | None = None,
    threads: int | None = None,
    window: int = DEFAULT_WINDOW,
    start: int = 0,
    stop: int | None = None,
    resume: bool = True,
    show_progress: bool = True,
    fingerprint: str | None = None,
    scan: InputScan | None = None,
) -> StreamResult:
    """Encode lines ``start:stop`` of ``input_path`` (default all) into ``out_path`` (``.npy``), streaming.

    See the module docstring for the files written and how resuming works. ``window``: lines read,
    sorted and encoded together (more = better bucketing, more memory; 16384 MiniLM embeddings are
    24 MiB). ``fingerprint``/``scan`` save recomputing the model fingerprint / input scan when the
    caller has them.
    """
    from tqdm.auto import tqdm

    from embedkit.models import model_fingerprint

    check_backend(backend)
    if backend == "sentence-transformers" or not understands(model):
        raise DataError("streaming encode needs a SentenceTransformer model and an embedkit backend "
                        f"(got {type(model).__name__}, backend {backend!r})", path=input_path)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    backend = resolve_backend(model, backend, device)  # once: a resumed run must use the same one
    source, out = Path(input_path), Path(out_path)
    scan = scan or scan_input(source)
    stop = scan.rows if stop is None else min(stop, scan.rows)
    if not 0 <= start < stop:
        raise DataError(f"no lines to encode (lines {start}:{stop} of a {scan.rows}-line file)", path=source)
    rows = stop - start
    full_prompt = resolve_prompt(model, role, prompt)
    identity = {"version": STATE_VERSION, "input_sha256": scan.sha256, "start": start, "stop": stop,
                "model": fingerprint or model_fingerprint(model), "prompt": full_prompt, "normalize": normalize,
                "backend": backend, "batch_size": batch_size, "window": window}
    partial = out.with_name(out.name + ".partial")
    state_path = out.with_name(out.name + ".partial.json")
    out.parent.mkdir(parents=True, exist_ok=True)

    state = _read_json(state_path) if resume else None
    done = 0
    if state is not None and state.get("identity") == identity and partial.exists():
        done, dim, offset = int(state["done"]), int(state["dim"]), int(state["offset"])
        if partial.stat().st_size != offset + rows * dim * 4:
            done = 0  # truncated or foreign file: start over
    resumed = done
    if done == 0:
        dim = _embedding_width(model, full_prompt, normalize, device, backend)
        array = np.lib.format.open_memmap(partial, mode="w+", dtype="<f4", shape=(rows, dim))
        offset = array.offset
        del array  # header written, data left sparse until each window fills it
        _write_json_atomic(state_path, {"identity": identity, "dim": dim, "offset": offset, "done": 0, "rows": rows})

    with tqdm(total=rows, initial=min(rows, done * window), desc="encode", unit="text", disable=not show_progress) as bar:
        for first, texts in _windows(source, start, stop, window, done):
            target = np.memmap(partial, dtype="<f4", mode="r+", offset=offset + first * dim * 4,
                               shape=(len(texts), dim))
            encode_into(model, texts, prompt=full_prompt, batch_size=batch_size, normalize=normalize, device=device,
                        backend=backend, workers=workers, threads=threads, out=target, progress=bar.update)
            target.flush()
            del target  # unmap: the written pages leave this process's resident memory
            done += 1
            _write_json_atomic(state_path, {"identity": identity, "dim": dim, "offset": offset, "done": done,
                                            "rows": rows})
    os.replace(partial, out)
    state_path.unlink(missing_ok=True)
    return StreamResult(out, rows, dim, resumed)
