"""Prometheus metrics of one server (a registry of its own, so two apps in one process do not collide)."""
from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("embedkit_http_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("embedkit_http_request_duration_seconds", "HTTP request latency by route",
                                 ["method", "route"], buckets=_LATENCY, registry=r)
        self.batch_size = Histogram("embedkit_encode_batch_size", "texts per forward pass (micro-batches)",
                                    buckets=_BATCH, registry=r)
        self.batch_wait = Histogram("embedkit_encode_queue_seconds",
                                    "time the oldest request of a batch waited before its forward pass",
                                    buckets=_LATENCY, registry=r)
        self.encode_seconds = Histogram("embedkit_encode_seconds", "forward pass time per batch",
                                        buckets=_LATENCY, registry=r)
        self.commits = Histogram("embedkit_write_commit_seconds", "log append + sync + apply, per group commit",
                                 ["index"], buckets=_LATENCY, registry=r)
        self.changes = Counter("embedkit_write_changes", "changes committed", ["index"], registry=r)
        self.documents = Gauge("embedkit_index_rows", "rows (documents or chunks) in each index", ["index"],
                               registry=r)
        self.version = Gauge("embedkit_index_version", "writes applied to each index since the start", ["index"],
                             registry=r)

    def observe_batch(self, texts: int, queued: float, seconds: float) -> None:
        self.batch_size.observe(texts)
        self.batch_wait.observe(queued)
        self.encode_seconds.observe(seconds)

    def observe_commit(self, index: str, changes: int, seconds: float) -> None:
        self.commits.labels(index).observe(seconds)
        self.changes.labels(index).inc(changes)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware: count and time every HTTP request by its route template (not the raw path, so
    ids in paths cannot blow up the label set). Plain ASGI: Starlette's BaseHTTPMiddleware costs more."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
