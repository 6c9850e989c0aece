"""What every embedkit benchmark does the same way: record the machine's load around each timed run,
interleave the compared runs (A B A B ...) and quote medians.

The machines these benchmarks run on are shared: other processes come and go during a run. A run
records the 1-minute load average before and after and the CPU share other processes took while it
ran (busy CPU time of the whole machine minus this process's own, from /proc/stat via psutil), so a
reader can tell a quiet measurement from a contended one.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import psutil


@dataclass
class Run:
    name: str
    seconds: float
    cpu_seconds: float  # this process and the child processes it waited for, user + system
    others_cpu: float  # cores' worth of CPU other processes used while it ran
    load_before: float
    load_after: float
    extra: dict = field(default_factory=dict)


def _busy_seconds() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0) + getattr(t, "steal", 0)


def timed(name: str, fn: Callable[[], object]) -> tuple[Run, object]:
    """Run ``fn`` once and measure it; returns the measurement and ``fn``'s result."""
    me = psutil.Process()
    load_before = os.getloadavg()[0]
    busy0, own0, t0 = _busy_seconds(), sum(me.cpu_times()[:4]), time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    own = sum(me.cpu_times()[:4]) - own0
    others = max(0.0, (_busy_seconds() - busy0) - own) / seconds if seconds > 0 else 0.0
    return Run(name, seconds, own, others, load_before, os.getloadavg()[0]), result


def interleaved(candidates: dict[str, Callable[[], object]], repeats: int,
                on_run: Callable[[Run, object], None] | None = None) -> dict[str, list[Run]]:
    """Run each candidate ``repeats`` times in the order A B C A B C ..., return the runs per name."""
    runs: dict[str, list[Run]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            run, result = timed(name, fn)
            runs[name].append(run)
            if on_run is not None:
                on_run(run, result)
    return runs


def median(values) -> float:
    return statistics.median(values) if values else float("nan")


# A timed run counts as quiet when other processes used at most this many cores' worth of CPU while it ran.
# On a shared 2-core machine one busy neighbour (about 1 core) slows torch's 2-thread OpenMP team several
# times (its threads spin at barriers while one is descheduled), far more than it slows single-threaded
# workers, so runs under load compare the engines' tolerance of load, not their speed.
QUIET_OTHERS_CPU = 0.25


def quiet_seconds(seconds: list[float], others_cpu: list[float]) -> tuple[list[float], bool]:
    """The quiet runs' times, and True; or every run's times and False when none was quiet."""
    quiet = [s for s, o in zip(seconds, others_cpu) if o <= QUIET_OTHERS_CPU]
    return (quiet, True) if quiet else (list(seconds), False)


def machine() -> dict:
    return {"cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "python": platform.python_version()}


def describe_load(runs: list[Run]) -> str:
    others = [r.others_cpu for r in runs]
    return (f"other processes used {median(others):.2f} cores (median; min {min(others):.2f}, max {max(others):.2f}),"
            f" load average {min(r.load_before for r in runs):.1f}-{max(r.load_after for r in runs):.1f}")
