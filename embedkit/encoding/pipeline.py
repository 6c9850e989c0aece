"""Tokenise on one thread, run forward passes on others.

The calling thread prepares batch features (tokenisation: HF fast tokenizers must not be called from
two threads at once, so it stays on one) and queues them; ``plan.workers`` threads take batches off
the queue, run the model and hand each result to ``write``. The queue holds two batches per worker,
so tokenisation of the next batches overlaps the forward passes and memory stays bounded.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Sequence

import numpy as np

from embedkit.encoding.threads import ThreadPlan

Prepare = Callable[[Sequence[int]], object]  # rows -> features
Forward = Callable[[object], np.ndarray]  # features -> (rows, dim) float32
Write = Callable[[np.ndarray, np.ndarray], None]  # rows, embeddings


def run_pipeline(row_batches: Iterable[np.ndarray], prepare: Prepare, forward: Forward, write: Write,
                 plan: ThreadPlan, progress: Callable[[int], None] | None = None) -> None:
    """Embed every batch of rows; returns when all are written, or raises the first error."""
    import torch

    jobs: queue.Queue = queue.Queue(maxsize=2 * plan.workers)
    failed = threading.Event()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        torch.set_num_threads(plan.threads)  # this thread's OpenMP team; restored for the caller below
        with torch.inference_mode():
            while True:
                job = jobs.get()
                if job is None:
                    return
                if failed.is_set():
                    continue  # drain, so the producer never blocks on a full queue
                rows, features = job
                try:
                    embeddings = forward(features)
                    write(rows, embeddings)
                except BaseException as exc:  # handed to the calling thread, which re-raises it
                    with lock:
                        errors.append(exc)
                    failed.set()
                    continue
                if progress is not None:
                    with lock:
                        progress(len(rows))

    caller_threads = torch.get_num_threads()
    threads = [threading.Thread(target=work, name=f"embedkit-encode-{i}", daemon=True) for i in range(plan.workers)]
    for t in threads:
        t.start()
    try:
        for rows in row_batches:
            if failed.is_set():
                break
            jobs.put((rows, prepare(rows)))
    except BaseException as exc:
        failed.set()
        errors.insert(0, exc)
    finally:
        for _ in threads:
            jobs.put(None)
        for t in threads:
            t.join()
        torch.set_num_threads(caller_threads)
    if errors:
        raise errors[0]
