"""How many batches run at once on a CPU, and with how many torch threads each.

torch runs one forward pass with an OpenMP team of ``torch.get_num_threads()`` threads (by default one
per core), which meet at a barrier after every operator. When other processes hold some of the cores
(shared machines, CI, a training job next door) a team member is descheduled and the others spin and
wait at each barrier: measured here, a 2-thread MiniLM forward pass ran about 4x slower in wall time
(and used 4x the CPU time) than the same pass with 1 thread. embedkit instead runs ``workers`` batches
at once, one per Python thread, each with its own ``threads`` (default 1): no barriers across cores,
so a busy core slows only the batch on it. torch releases the GIL inside its operators, so the
threads run in parallel.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and ``taskset`` narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ThreadPlan:
    workers: int  # batches in flight, one Python thread each
    threads: int  # torch intra-op threads per worker

    @classmethod
    def for_device(cls, device_type: str, workers: int | None = None, threads: int | None = None) -> "ThreadPlan":
        """CPU: one worker per usable CPU with 1 thread each, unless told otherwise. Accelerators: one
        worker (the device runs one batch at a time anyway; the main thread tokenises the next batch)."""
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if device_type != "cpu":
            return cls(workers or 1, threads or 1)
        cpus = usable_cpus()
        if workers is None:
            workers = max(1, cpus // (threads or 1))
        return cls(workers, threads or max(1, cpus // workers))
