"""Prometheus metrics: requests counted by route template (never by path or query, which can hold places)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geoserver.asgi import HttpMiddleware
from tiles.cache import TileCache

CLIENT_CLOSED_REQUEST = 499  # the status counted for a request whose client went before it was read (nginx's)
BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """One app's metrics, in a registry of its own (nothing global, so apps and tests never mix counts)."""

    def __init__(self, cache: TileCache) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "geoserver_requests",
            "HTTP requests by route template and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "geoserver_request_seconds",
            "HTTP request duration by route template",
            ["route"],
            buckets=BUCKETS_S,
            registry=self.registry,
        )
        stats = cache.stats
        for name, doc, read in (
            ("geoserver_tile_cache_hits", "Tile cache hits", lambda: stats.hits),
            ("geoserver_tile_cache_misses", "Tile cache misses", lambda: stats.misses),
            ("geoserver_tile_cache_evictions", "Tiles evicted to keep the byte bound", lambda: stats.evictions),
            (
                "geoserver_tile_cache_invalidations",
                "Tiles dropped because their data changed",
                lambda: stats.invalidations,
            ),
            ("geoserver_tile_cache_bytes", "Bytes held by the tile cache", lambda: cache.bytes_used),
            ("geoserver_tile_cache_tiles", "Tiles held by the tile cache", lambda: len(cache)),
        ):
            Gauge(name, doc, registry=self.registry).set_function(read)


class MetricsMiddleware(HttpMiddleware):
    """Count and time every request under its route template, e.g. /tiles/{layers}/{z}/{x}/{y_file}."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        super().__init__(app)
        self.metrics = metrics

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        except ClientDisconnect:
            status = CLIENT_CLOSED_REQUEST
            raise
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(template, str(status)).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - started)
