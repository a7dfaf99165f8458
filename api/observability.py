"""Prometheus metrics and structured access logs, as ASGI middleware."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("findling.access")


class Metrics:
    """One registry per app, so several apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "findling_requests",
            "HTTP requests",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "findling_request_seconds",
            "HTTP request latency",
            ["route", "method"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.documents = Gauge(
            "findling_index_documents",
            "Documents per collection",
            ["collection"],
            registry=self.registry,
        )
        self.passages = Gauge(
            "findling_index_passages",
            "Sentences per collection",
            ["collection"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _route(scope: Scope) -> str:
    # the route template, not the raw path: /documents/{doc_id} must not explode the labels
    route = scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")


class ObservabilityMiddleware:
    """Counts and times every request, logs one JSON line per request (never headers)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - started
            route, method = _route(scope), scope["method"]
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(seconds)
            access_log.info(
                json.dumps(
                    {
                        "method": method,
                        "path": scope["path"],
                        "route": route,
                        "status": status,
                        "ms": round(seconds * 1000, 2),
                        "client": (scope.get("client") or ("", 0))[0],
                    }
                )
            )


def observe_index(metrics: Metrics, sizes: dict[str, Any]) -> None:
    """Set the index gauges from ``{collection: manifest}``."""
    for name, manifest in sizes.items():
        metrics.documents.labels(name).set(manifest.documents)
        metrics.passages.labels(name).set(manifest.passages)
