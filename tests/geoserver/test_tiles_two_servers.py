"""Two server processes on one database: an edit seen by one is seen by the other; untouched tiles stay cached."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import mapbox_vector_tile
import morecantile
import psycopg
import pytest

from tests.support.cluster import die_with_parent
from tests.support.servers import free_port

WMQ = morecantile.tms.get("WebMercatorQuad")


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Accept-Encoding": "identity"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback only
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
    except OSError:
        return 0, {}, b""  # not listening yet


@pytest.fixture(scope="module")
def two_servers(database_url: str, demo_city: dict[str, str]) -> Iterator[list[str]]:
    """Two `geoserver serve` processes on the test database."""
    processes, urls = [], []
    for _ in range(2):
        port = free_port()
        env = {
            **os.environ,
            "GEOSERVER_DATABASE_URL": database_url,
            "GEOSERVER_PORT": str(port),
            "GEOSERVER_LOAD_DEMO": "false",
            "GEOSERVER_LOG_LEVEL": "warning",
        }
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "geoserver", "serve"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 60
    for url in urls:
        while _get(f"{url}/ready")[0] != 200:
            assert time.monotonic() < deadline, "a server did not become ready"
            time.sleep(0.2)
    try:
        yield urls
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)


def _facility_tile(conn: psycopg.Connection, facility_id: int, z: int = 15) -> tuple[str, float, float]:
    lon, lat = conn.execute(
        "SELECT ST_X(geom), ST_Y(geom) FROM layer_data.facilities WHERE facility_id = %s", [facility_id]
    ).fetchone()  # type: ignore[misc]
    t = WMQ.tile(lon, lat, z)
    return f"/tiles/facilities/{z}/{t.x}/{t.y}.pbf", lon, lat


def _names(body: bytes) -> set[str]:
    if not body:
        return set()
    return {f["properties"]["name"] for f in mapbox_vector_tile.decode(body)["facilities"]["features"]}


def test_an_edit_reaches_the_other_server_and_untouched_tiles_stay_cached(
    two_servers: list[str], database_url: str
) -> None:
    a, b = two_servers
    with psycopg.connect(database_url, autocommit=True) as conn:
        ids = [r[0] for r in conn.execute("SELECT facility_id FROM layer_data.facilities ORDER BY facility_id")]
        edited, far = ids[0], ids[-1]
        edited_path, _, _ = _facility_tile(conn, edited)
        far_path, _, _ = _facility_tile(conn, far)
        assert edited_path != far_path
        for server in (a, b):
            for path in (edited_path, far_path):
                _get(server + path)
        assert _get(b + far_path)[1]["x-tile-cache"] == "hit"
        assert _get(b + edited_path)[1]["x-tile-cache"] == "hit"

        conn.execute("UPDATE layer_data.facilities SET name = 'Renamed by an edit' WHERE facility_id = %s", [edited])

    for server in (a, b):
        deadline = time.monotonic() + 5
        while True:
            status, headers, body = _get(server + edited_path)
            if "Renamed by an edit" in _names(body):
                break
            assert time.monotonic() < deadline, f"{server} kept serving the stale tile"
            time.sleep(0.02)
        assert status == 200
    # Tiles far from the edit were not dropped: still served from the cache.
    assert _get(b + far_path)[1]["x-tile-cache"] == "hit"


def test_a_dropped_listener_reconnects_and_flushes_the_cache(two_servers: list[str], database_url: str) -> None:
    _, b = two_servers
    with psycopg.connect(database_url, autocommit=True) as conn:
        path, _, _ = _facility_tile(conn, 1, z=13)
        _get(b + path)
        assert _get(b + path)[1]["x-tile-cache"] == "hit"
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'geoserver-listener'"
        ).fetchone()
        assert killed is not None and killed[0] >= 2
        deadline = time.monotonic() + 15
        while _listeners(conn) < 2:
            assert time.monotonic() < deadline, "the listeners did not come back"
            time.sleep(0.1)
    # Whatever changed while nobody listened may be stale: the cache is flushed on reconnection. Without the
    # flush this tile would stay a hit for ever (nothing else evicts it), so a miss proves the flush.
    while _get(b + path)[1]["x-tile-cache"] != "miss":
        assert time.monotonic() < deadline, "the cache was not flushed after the listener reconnected"
        time.sleep(0.05)


def _listeners(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'geoserver-listener'").fetchone()
    return int(row[0]) if row else 0


def test_an_http_edit_on_one_server_shows_at_once_in_the_others_tiles_and_near_me(
    two_servers: list[str], database_url: str
) -> None:
    import httpx

    from tests.support.access import issue

    first, second = two_servers
    staff = {"Authorization": f"Bearer {issue(database_url, 'gis@two-servers', staff=True)}"}
    with psycopg.connect(database_url) as conn:
        path, lon, lat = _facility_tile(conn, 7)
    name = f"moved by an edit {time.monotonic_ns()}"
    warm = httpx.get(f"{second}{path}")  # the second server now has the tile cached
    assert warm.status_code == 200 and name not in warm.text
    edited = httpx.patch(
        f"{first}/collections/facilities/items/7",
        json={"properties": {"name": name}},
        headers={**staff, "Content-Type": "application/merge-patch+json"},
    )
    assert edited.status_code == 200, edited.text
    deadline = time.monotonic() + 5
    while True:  # the notice reaches the other server within moments, not a cache lifetime
        tile = httpx.get(f"{second}{path}")
        names = {f["properties"].get("name") for f in mapbox_vector_tile.decode(tile.content)["facilities"]["features"]}
        near = httpx.get(f"{second}/nearby", params={"lon": lon, "lat": lat, "layers": "facilities", "limit": 1}).json()
        if name in names and near["features"][0]["properties"]["name"] == name:
            break
        assert time.monotonic() < deadline, "the other server still answers with the old feature"
        time.sleep(0.05)
    restored = httpx.post(f"{first}/collections/facilities/items/7/versions/1/restore", headers=staff)
    assert restored.status_code == 200


def test_a_request_created_over_georeport_shows_in_tiles_and_near_me_on_both_servers(
    two_servers: list[str], database_url: str
) -> None:
    import httpx

    from tests.support.access import issue
    from tests.support.open311 import POTHOLE, form, place, remove_submitted

    first, second = two_servers
    lon, lat = place(database_url, 177)
    t = WMQ.tile(lon, lat, 16)
    path = f"/tiles/service_requests/16/{t.x}/{t.y}.pbf"
    for server in two_servers:
        assert httpx.get(f"{server}{path}").status_code in (200, 204)  # cached (or known empty) before the request
    key = issue(database_url, "app@two-servers", open311=True)
    try:
        created = httpx.post(f"{first}/open311/v2/requests.json", data=form(key, (lon, lat), POTHOLE))
        assert created.status_code == 200, created.text
        request_id = created.json()[0]["service_request_id"]
        for server in two_servers:
            deadline = time.monotonic() + 5
            while True:  # tiles and near-me follow on every server as soon as the notice arrives
                tile = httpx.get(f"{server}{path}")
                decoded = mapbox_vector_tile.decode(tile.content) if tile.status_code == 200 else {}
                ids = {
                    f["properties"].get("request_id") for f in decoded.get("service_requests", {}).get("features", [])
                }
                near = httpx.get(
                    f"{server}/nearby", params={"lon": lon, "lat": lat, "layers": "service_requests", "limit": 3}
                ).json()
                if request_id in ids and request_id in {f["properties"]["request_id"] for f in near["features"]}:
                    break
                assert time.monotonic() < deadline, f"{server} does not show the new request"
                time.sleep(0.05)
    finally:
        remove_submitted(database_url)
