"""Plain Ray tasks for work that is not a stream of rows (an IVF build's training and filling): the
calling layer says what to run, this module how to run it on the cluster.

Call inside :func:`embedkit.distributed.cluster.connected`.
"""
from __future__ import annotations

from typing import Callable, Sequence

from embedkit.distributed.pipeline import _embedkit_cause


def cluster_cpus() -> tuple[int, int]:
    """The cluster's CPUs in all, and the most that one alive node has."""
    import ray

    nodes = [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]
    return max(1, sum(nodes)), max(1, max(nodes, default=1))


def map_tasks(fn: Callable, calls: Sequence[tuple], *, shared=None, num_cpus: float = 1,
              desc: str | None = None, total: int | None = None) -> list:
    """``fn(shared, *args)`` for each ``args`` of ``calls``, as Ray tasks spread over the cluster; their
    results in order. ``shared`` goes to the object store once, not once per task. ``desc``/``total``: a
    progress bar that each task's result (a count) advances. Ray retries a task whose worker dies; an
    embedkit error raised in a task comes back as itself (one line), not as Ray's wrapper."""
    import ray
    from tqdm.auto import tqdm

    remote = ray.remote(fn).options(num_cpus=num_cpus)
    shared_ref = ray.put(shared)
    refs = [remote.remote(shared_ref, *args) for args in calls]
    try:
        with tqdm(total=total, desc=desc, unit="vec", disable=desc is None) as bar:
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending)
                if total is not None:
                    bar.update(sum(ray.get(done)))
        return ray.get(refs)
    except Exception as exc:
        cause = _embedkit_cause(exc)
        if cause is not None:
            raise cause from None
        raise
