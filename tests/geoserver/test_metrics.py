"""Prometheus metrics: routes by template, tile cache counters, nothing from the path or query."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_metrics_count_requests_by_route_template_and_tile_cache(client: TestClient) -> None:
    client.get("/tiles/wards/11/374/685.pbf")
    client.get("/tiles/wards/11/374/685.pbf")
    client.get("/health?marker=51.0447")
    text = client.get("/metrics").text
    assert 'geoserver_requests_total{route="/tiles/{layers}/{z}/{x}/{y_file}",status="200"}' in text
    assert 'route="/health"' in text
    hits = next(line for line in text.splitlines() if line.startswith("geoserver_tile_cache_hits "))
    assert float(hits.split()[1]) >= 1
    # Paths and query strings never become labels: a route template cannot carry a place.
    assert "374/685" not in text and "51.0447" not in text
