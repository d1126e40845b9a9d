"""Heavy work never takes what map requests need, nothing outlives its client, and limits say which limit was hit.

Every test reads a layer that is slow on purpose (a view sleeping on each row, for the server's connections only).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from geoserver.app import create_app
from geoserver.settings import Settings
from tests.support.access import issue
from tests.support.servers import LiveServer
from tests.support.slow import active_queries, slow_layer

SLOW = "slow lane"
ITEMS = "/collections/slow%20lane/items"
FILTER: dict[str, str | int] = {"filter": "name LIKE 'row%'", "limit": 5}
# Each row takes 0.5 s to read: 12 rows, about 6 s for anything that reads them all.
VIEW = "slow_lane_view"


@pytest.fixture(scope="module")
def server(database_url: str, demo_city: dict[str, str], app_data_dir: Path) -> Iterator[LiveServer]:
    """One heavy connection, one heavy request per address, a 2 s statement limit for anonymous heavy work."""
    settings = Settings(
        data_dir=app_data_dir,
        heavy_pool_size=1,
        heavy_per_client=1,
        heavy_wait_s=0.5,
        anonymous_heavy_timeout_ms=2_000,
        trusted_proxies="127.0.0.1",
    )
    with slow_layer(database_url, SLOW, rows=12), LiveServer(create_app(settings, database_url)) as live:
        deadline = time.monotonic() + 15
        while httpx.get(f"{live.url}/collections/slow%20lane").status_code != 200:
            assert time.monotonic() < deadline, "the slow layer never appeared"
            time.sleep(0.1)
        yield live


def _wait_for(condition: Any, seconds: float, what: str) -> float:
    """Poll until `condition()` is true; returns how long it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, what
        time.sleep(0.02)
    return time.monotonic() - started


def _send_and_hold(port: int, path_and_query: str, headers: str = "") -> socket.socket:
    """Send a GET on a raw socket and keep the connection open without reading (the caller closes it)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"GET {path_and_query} HTTP/1.1\r\nHost: t\r\n{headers}\r\n".encode())
    return sock


def test_a_query_whose_client_left_is_cancelled_in_postgresql(server: LiveServer, database_url: str) -> None:
    sock = _send_and_hold(server.port, f"{ITEMS}?limit=20")
    _wait_for(lambda: active_queries(database_url, VIEW) >= 1, 10, "the slow query never started")
    sock.close()
    took = _wait_for(lambda: active_queries(database_url, VIEW) == 0, 5, "the backend kept running")
    assert took < 1.0, f"the backend ran {took:.2f} s after its client left"


def test_map_requests_keep_their_connections_while_heavy_work_piles_up(server: LiveServer, database_url: str) -> None:
    holder = _send_and_hold(server.port, f"{ITEMS}?filter=name%20LIKE%20%27row%25%27&limit=5")
    try:
        _wait_for(lambda: active_queries(database_url, VIEW) >= 1, 10, "the heavy query never started")
        # The same address again: its one heavy request is running.
        again = httpx.get(f"{server.url}{ITEMS}", params=FILTER)
        assert again.status_code == 429 and again.json()["limit"] == "heavy_per_client"
        assert int(again.headers["retry-after"]) >= 1
        # Another address (through the trusted proxy): the one heavy connection is taken.
        other = httpx.get(f"{server.url}{ITEMS}", params=FILTER, headers={"X-Forwarded-For": "198.51.100.7"})
        assert other.status_code == 503 and other.json()["limit"] == "heavy_connections"
        assert int(other.headers["retry-after"]) >= 1
        # Meanwhile map requests are served from their own pool.
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(
                    lambda path: httpx.get(f"{server.url}{path}", timeout=10),
                    ["/collections/wards/items?limit=1", "/tiles/wards/13/1484/2727.mvt", "/collections"] * 4,
                )
            )
        assert all(a.status_code in (200, 204) for a in answers), [a.status_code for a in answers]
    finally:
        holder.close()
    _wait_for(lambda: active_queries(database_url, VIEW) == 0, 5, "the heavy query outlived its client")


def test_anonymous_heavy_filters_stop_sooner_than_signed_in_ones(server: LiveServer, database_url: str) -> None:
    anonymous = httpx.get(f"{server.url}{ITEMS}", params=FILTER, timeout=30)
    assert anonymous.status_code == 503 and anonymous.json()["code"] == "query_too_expensive"
    assert "2 s" in anonymous.json()["description"] and int(anonymous.headers["retry-after"]) >= 1
    staff = issue(database_url, "gis@workloads", staff=True)
    signed_in = httpx.get(
        f"{server.url}{ITEMS}", params={**FILTER, "limit": 4}, headers={"Authorization": f"Bearer {staff}"}, timeout=60
    )
    assert signed_in.status_code == 200, signed_in.text  # about 6 s a scan: under the City's 15 s limit
    assert signed_in.json()["numberReturned"] == 4


def test_open311_measures_are_heavy_work_and_answer_georeport_errors(server: LiveServer, database_url: str) -> None:
    holder = _send_and_hold(server.port, f"{ITEMS}?filter=name%20LIKE%20%27row%25%27&limit=5")
    try:
        _wait_for(lambda: active_queries(database_url, VIEW) >= 1, 10, "the heavy query never started")
        # The stats aggregate every request: they wait for heavy capacity, and say so in GeoReport's error body.
        mine = httpx.get(f"{server.url}/open311/v2/stats")
        assert mine.status_code == 429 and mine.json()[0]["code"] == 429 and int(mine.headers["retry-after"]) >= 1
        other = httpx.get(f"{server.url}/open311/v2/stats", headers={"X-Forwarded-For": "198.51.100.8"})
        assert other.status_code == 503 and other.json()[0]["code"] == 503 and int(other.headers["retry-after"]) >= 1
        assert "connections" in other.json()[0]["description"]
        # GeoReport's reads are map requests: served from their own pool meanwhile.
        for path in ("/open311/v2/services.json", "/open311/v2/requests.json", "/open311/v2/requests.xml"):
            assert httpx.get(f"{server.url}{path}", timeout=10).status_code == 200, path
    finally:
        holder.close()
    _wait_for(lambda: active_queries(database_url, VIEW) == 0, 5, "the heavy query outlived its client")
    assert httpx.get(f"{server.url}/open311/v2/stats", timeout=30).status_code == 200
