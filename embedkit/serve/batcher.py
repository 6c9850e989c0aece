"""Dynamic micro-batching: concurrent encode requests share one forward pass.

A request puts a job (its texts, the model and prompt, and optionally a function to run on the vectors)
in a queue and awaits it. ``workers`` threads take jobs off the queue: a worker takes the oldest job,
waits until the jobs of the same model and prompt hold ``max_batch`` texts or the oldest has waited
``max_wait`` seconds, encodes them all in one call to :func:`embedkit.encoding.encode`, and hands
each job its rows. While the workers are busy, requests pile up and the next batch goes out at once, so
the wait is only paid when the server is idle. ``max_batch=1`` turns batching off (one forward pass
per request), which ``benchmarks/serve_bench.py`` measures beside it.

Why threads and not the event loop: the forward pass holds the CPU for milliseconds, and torch releases
the GIL inside its operators, so two workers with one torch thread each use two cores; this is the
encoding engine's own plan (see :mod:`embedkit.encoding.threads`: one team of two threads stalls at
every operator's barrier when the machine is shared). The ``then`` function (a FAISS search, a token
count) runs on the worker too, so a search costs one thread hop, not two.

Each worker encodes with a model of its own (:meth:`MicroBatcher.register`: the model itself for the
first worker, deep copies for the others): a Hugging Face fast tokenizer is not safe to call from two
threads at once (its padding and truncation settings are shared state), and a copy per worker keeps
the workers independent without a lock that would serialise their tokenisation. The cost is one copy
of the weights per extra worker (90 MB for all-MiniLM-L6-v2).

Written here rather than taken from a library: text-embeddings-inference and infinity batch this way
but are servers, not libraries, and nothing on PyPI batches calls to a Python function across threads.
"""
from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from embedkit.encoding import encode
from embedkit.encoding.threads import usable_cpus
from embedkit.heap import release_free_memory, reuse_freed_memory

TRIM_SECONDS = 1.0


@dataclass
class _Job:
    model: object
    prompt: str
    backend: str
    texts: list[str]
    then: Callable[[np.ndarray, object], object] | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    arrived: float = field(default_factory=time.perf_counter)

    @property
    def key(self) -> tuple:
        return id(self.model), self.prompt, self.backend


class MicroBatcher:
    def __init__(self, max_batch: int = 32, max_wait: float = 0.002, workers: int | None = None,
                 observe_batch: Callable[[int, float, float], None] | None = None):
        """``observe_batch(texts, queued_seconds_of_oldest, encode_seconds)`` is called after each batch."""
        if max_batch < 1 or max_wait < 0:
            raise ValueError("max_batch must be >= 1 and max_wait >= 0")
        self.max_batch, self.max_wait = max_batch, max_wait
        self.workers = workers or usable_cpus()
        self._observe = observe_batch
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._replicas: dict[int, list] = {}  # id(model) -> one model per worker
        self._heap = reuse_freed_memory()
        self._trimmed = time.monotonic()  # when the heap's free pages were last handed back (see _work)

    def register(self, model) -> None:
        """Give every worker its own copy of ``model`` (see the module docstring); before :meth:`start`."""
        if id(model) not in self._replicas:
            self._replicas[id(model)] = [model] + [copy.deepcopy(model) for _ in range(self.workers - 1)]

    def start(self) -> None:
        # Freed activation buffers stay in the heap for the server's lifetime (embedkit.heap): each
        # encode call would otherwise trim the heap when it ends, hundreds of times a second.
        self._heap.__enter__()
        self._threads = [threading.Thread(target=self._work, args=(i,), name=f"embedkit-batch-{i}", daemon=True)
                         for i in range(self.workers)]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for t in self._threads:
            t.join()
        self._threads = []
        while self._jobs:  # requests still waiting when the workers stopped
            _settle(self._jobs.popleft(), error=RuntimeError("the server is shutting down"))
        self._heap.__exit__(None, None, None)

    async def run(self, model, texts: list[str], prompt: str = "", backend: str = "torch",
                  then: Callable[[np.ndarray, object], object] | None = None):
        """The embeddings of ``texts`` (float32, one row each) through ``backend`` (see
        :mod:`embedkit.encoding.backends`), or ``then(embeddings, worker_model)`` computed on the worker
        (``worker_model``: that worker's copy, for anything that tokenises)."""
        if id(model) not in self._replicas:
            raise ValueError("register the model with the batcher before encoding with it")
        loop = asyncio.get_running_loop()
        job = _Job(model, prompt, backend, list(texts), then, loop, loop.create_future())
        with self._cond:
            if self._stopping:
                raise RuntimeError("the server is shutting down")
            self._jobs.append(job)
            self._cond.notify()
        return await job.future

    # ------------------------------------------------------------------ workers

    def _take(self) -> list[_Job] | None:
        """The next batch: the oldest job plus same-key jobs, up to ``max_batch`` texts (the oldest always)."""
        with self._cond:
            while True:
                if self._stopping:
                    return None
                if not self._jobs:
                    self._cond.wait()
                    continue
                head = self._jobs[0]
                queued = sum(len(j.texts) for j in self._jobs if j.key == head.key)
                remaining = head.arrived + self.max_wait - time.perf_counter()
                if queued >= self.max_batch or remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch, size, kept = [], 0, deque()
            while self._jobs:
                job = self._jobs.popleft()
                if job.key == head.key and (not batch or size + len(job.texts) <= self.max_batch):
                    batch.append(job)
                    size += len(job.texts)
                else:
                    kept.append(job)
            self._jobs = kept
            if self._jobs:
                self._cond.notify()  # another worker can start on what is left
            return batch

    def _work(self, worker: int) -> None:
        while (batch := self._take()) is not None:
            head = batch[0]
            model = self._replicas[id(head.model)][worker]
            texts = [t for job in batch for t in job.texts]
            started = time.perf_counter()
            try:
                vectors = encode(model, texts, prompt=head.prompt, batch_size=self.max_batch, workers=1,
                                 threads=1, show_progress=False, backend=head.backend)
            except BaseException as exc:  # every job of the batch fails with the encoder's error
                for job in batch:
                    _settle(job, error=exc)
                continue
            if self._observe is not None:
                self._observe(len(texts), started - head.arrived, time.perf_counter() - started)
            row = 0
            for job in batch:
                rows = vectors[row:row + len(job.texts)]
                row += len(job.texts)
                try:
                    _settle(job, result=job.then(rows, model) if job.then is not None else rows)
                except BaseException as exc:
                    _settle(job, error=exc)
            self._trim_now_and_then()  # after the answers are on their way: no request waits for it

    def _trim_now_and_then(self) -> None:
        """At most once every ``TRIM_SECONDS``, hand the heap's free pages back to the kernel.

        Freed buffers stay in the heap for reuse (``start``), but requests of every size and the writer's
        BM25 rebuilds fragment it, and free pages stranded between live blocks are never reused: without
        this, resident memory rose in every round of the same load (``serve_bench.py --soak``). A trim a
        second keeps the reuse within the second and lets nothing pile up."""
        now = time.monotonic()
        if now - self._trimmed < TRIM_SECONDS:
            return
        with self._cond:  # one worker trims; the others go on
            if now - self._trimmed < TRIM_SECONDS:
                return
            self._trimmed = now
        release_free_memory()


def _settle(job: _Job, result=None, error: BaseException | None = None) -> None:
    def apply() -> None:
        if job.future.done():  # the client went away and the request was cancelled
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(result)

    job.loop.call_soon_threadsafe(apply)
