"""Joining a Ray cluster, and sizing the actor pool from what the cluster has.

``address``: ``None`` starts or joins a local Ray instance (``RAY_ADDRESS``, else the cluster that
``ray start`` last started on this machine, else a new one), as ``ray.init()`` does; ``host:port`` joins
that cluster's head; ``ray://host:10001`` connects through Ray Client. An address that does not answer
is refused after a short TCP check: ``ray.init`` itself retries such an address for minutes.
"""
from __future__ import annotations

import contextlib
import logging
import socket
from dataclasses import dataclass
from typing import Iterator

from embedkit.errors import ConfigError

CONNECT_TIMEOUT_S = 5.0
DEFAULT_MAX_CPUS_PER_ACTOR = 8


def _host_port(address: str) -> tuple[str, int] | None:
    text = address.removeprefix("ray://")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse, in one line, an address that is malformed or where nothing accepts a TCP connection."""
    parsed = _host_port(address)
    if parsed is None:
        raise ConfigError(f"--ray {address}: expected HOST:PORT (the head's GCS address, e.g. 10.0.0.1:6379) "
                          "or ray://HOST:10001")
    try:
        with socket.create_connection(parsed, timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"--ray {address}: no Ray cluster answers there ({reason}); start one with "
                          "`ray start --head` or check the address") from None


@contextlib.contextmanager
def connected(address: str | None) -> Iterator[None]:
    """Connected to Ray for the block; disconnects after unless the caller was connected already."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray Data: pip install 'embedkit[ray]'") from None

    if ray.is_initialized():
        yield
        return
    if address not in (None, "", "auto", "local"):
        check_reachable(address)
    try:
        ray.init(address=address or None, logging_level=logging.WARNING, log_to_driver=False,
                 include_dashboard=False)  # ignored when joining a cluster; a new local one needs none
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"--ray {address or '(local)'}: cannot connect ({str(exc).splitlines()[0]})") from None
    _quiet_ray_data()
    try:
        yield
    finally:
        ray.shutdown()


def _quiet_ray_data() -> None:
    """No Ray Data progress bars or per-operator log lines: embedkit shows one progress bar of its own."""
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"


@dataclass(frozen=True)
class ActorPlan:
    actors: int
    num_cpus: float
    num_gpus: float
    workers: int  # engine worker threads per actor (batches in flight)

    def describe(self) -> str:
        each = "1 GPU" if self.num_gpus else f"{self.num_cpus:g} CPU"
        return f"{self.actors} actor{'s' if self.actors != 1 else ''} x {each}"


def plan_actors(device: str | None, cpus_per_actor: int | None = None, actors: int | None = None) -> ActorPlan:
    """One model per actor: on GPU nodes one actor per GPU; on CPU nodes actors of ``cpus_per_actor`` CPUs
    (default: the smallest node's CPUs, at most 8), as many as the alive nodes hold. ``actors`` caps it."""
    import ray

    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    gpus = sum(int(r.get("GPU", 0)) for r in nodes)
    wants_gpu = device is not None and not str(device).startswith("cpu")
    if wants_gpu and gpus == 0:
        raise ConfigError(f"--device {device}: the Ray cluster has no GPU")
    if gpus and (device is None or wants_gpu):
        count = gpus if actors is None else min(actors, gpus)
        return ActorPlan(count, 1, 1, 1)
    cpus = [int(r.get("CPU", 0)) for r in nodes if r.get("CPU", 0) >= 1]
    if not cpus:
        raise ConfigError("the Ray cluster has no CPU to run encoders on")
    per_actor = cpus_per_actor or min(DEFAULT_MAX_CPUS_PER_ACTOR, min(cpus))
    count = sum(c // per_actor for c in cpus)
    if count == 0:
        raise ConfigError(f"--cpus-per-actor {per_actor}: no node of the cluster has that many CPUs "
                          f"(largest: {max(cpus)})")
    return ActorPlan(count if actors is None else min(actors, count), per_actor, 0, per_actor)
