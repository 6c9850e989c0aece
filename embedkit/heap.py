"""Reuse freed activation buffers instead of mapping them afresh (glibc on Linux; elsewhere a no-op).

torch's CPU allocator is plain ``malloc``. glibc serves every request above its mmap threshold (at
most 32 MB) with a fresh ``mmap`` and unmaps it on ``free``, so the kernel zero-fills and page-faults
every page again on the next use. A MiniLM layer over 32 texts of 256 tokens allocates ~100 MB of
attention buffers, so each training step or long-text batch maps gigabytes anew, and on a 2-core CPU
the page faults cost a sizeable share of the step (``benchmarks/train_bench.py --heap``; figures in
benchmarks/README.md). torch's CUDA caching allocator already avoids this on GPUs.

:func:`reuse_freed_memory` turns ``mmap`` and heap trimming off for the duration, so freed buffers stay
in the heap for the next batch; on exit it trims the heap, handing the memory back. The peak resident
set grows by what the kernel would otherwise have reclaimed between batches. glibc cannot report its
settings, so on exit they are set to where its dynamic threshold ends after large allocations (mmap
threshold 32 MB, trim threshold 64 MB). Code that runs afterwards in the same process keeps them, which
is why benchmarks/encode_bench.py times each method in a process of its own.
"""
from __future__ import annotations

import ctypes
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
_DEFAULT_MMAP_MAX = 65536
_SETTLED_MMAP_THRESHOLD = 32 * 2**20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit
_SETTLED_TRIM_THRESHOLD = 2 * _SETTLED_MMAP_THRESHOLD  # what glibc pairs with it
_NEVER_TRIM = 2**31 - 1  # the largest value mallopt takes (an int)

_lock = threading.Lock()
_depth = 0  # nested (training, whose evaluation encodes) or concurrent callers


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc's soname; musl and others have no mallopt
        libc.mallopt, libc.malloc_trim  # noqa: B018 - both exist only in glibc
    except (OSError, AttributeError):
        return None
    return libc


_libc = _glibc()


def available() -> bool:
    return _libc is not None


@contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """Within the block, freed buffers are kept in the heap and reused (see the module docstring)."""
    global _depth
    if _libc is None:
        yield
        return
    with _lock:
        if _depth == 0:
            _libc.mallopt(_M_MMAP_MAX, 0)
            _libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                _libc.mallopt(_M_MMAP_THRESHOLD, _SETTLED_MMAP_THRESHOLD)
                _libc.mallopt(_M_TRIM_THRESHOLD, _SETTLED_TRIM_THRESHOLD)
                _libc.malloc_trim(0)


def release_free_memory() -> None:
    """Hand the heap's free pages back to the kernel now (``malloc_trim(0)``: every arena, not only the top
    of each heap), whatever the settings above; a no-op without glibc. For a long-running process inside
    :func:`reuse_freed_memory`, called now and then: the buffers of the next batches are reused in between,
    and what fragmentation strands between live blocks does not pile up."""
    if _libc is not None:
        _libc.malloc_trim(0)
