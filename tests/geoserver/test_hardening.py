"""What one anonymous client once could do to everyone: inputs that answered 500, positions kept by shared caches,
a catalogue that looked empty while the database was down, URLs and headers the HTTP server answered in plain text,
downloads rebuilt for every request, and no limit on how often one address may ask."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from geoserver.app import create_app
from geoserver.responses import PRIVATE
from geoserver.settings import Settings
from layers.ingest.in_place import publish_table
from tests.support.layers import drop_layer, manifest
from tests.support.servers import WEBSOCKET_UPGRADE, LiveServer, free_port

EPSG_3776 = "http://www.opengis.net/def/crs/EPSG/0/3776"
FAR_POINT = {"op": "s_intersects", "args": [{"property": "geometry"}, {"type": "Point", "coordinates": [9e14, 9e14]}]}


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/nearby?lon=-114&lat=51&radius=5e-324", "radius"),
        ("/nearby?lon=-114&lat=51&at=9999-12-31T23:59:59Z", "at"),
        ("/nearby?lon=-114&lat=51&at=0001-01-01T00:00:00Z", "at"),
        ("/collections/facilities/items?near=-114,51&radius=1e-300", "radius"),
        (f"/collections/wards/items?bbox-crs={EPSG_3776}&bbox=-1e20,-1e20,1e20,1e20", "bbox"),
        (
            f"/collections/wards/items?filter-lang=cql2-json&filter-crs={EPSG_3776}&filter={quote(json.dumps(FAR_POINT))}",
            "filter",
        ),
        (f"/collections/wards/items?filter-crs={EPSG_3776}&filter=S_INTERSECTS(geometry,POINT(1e8 1e8))", "filter"),
    ],
)
def test_inputs_that_once_answered_500_answer_400_naming_the_parameter(
    client: TestClient, path: str, parameter: str
) -> None:
    answer = client.get(path)
    assert answer.status_code == 400, answer.text
    assert answer.json()["parameter"] == parameter


def test_a_bbox_in_the_city_grid_still_works(client: TestClient) -> None:
    # Downtown Calgary in EPSG:3776 (Alberta 3TM, 114 W): inside the CRS's domain, so no 400.
    answer = client.get(
        "/collections/wards/items", params={"bbox-crs": EPSG_3776, "bbox": "-5000,5650000,5000,5670000"}
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("fmt", ["json", "html"])
def test_items_near_a_position_are_never_kept_by_shared_caches(client: TestClient, fmt: str) -> None:
    near = client.get("/collections/facilities/items", params={"near": "-114.06,51.04", "radius": 2000, "f": fmt})
    assert near.status_code == 200 and near.headers["cache-control"] == PRIVATE
    plain = client.get("/collections/facilities/items", params={"f": fmt})
    assert plain.headers["cache-control"].startswith("public")


def test_catalogue_routes_answer_503_while_the_catalogue_cannot_be_loaded(app_data_dir: Path) -> None:
    nowhere = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    settings = Settings(data_dir=app_data_dir, connect_timeout_s=1)
    with TestClient(create_app(settings, nowhere)) as down:
        time.sleep(0.5)  # the catalogue watcher has tried, and failed, to connect
        for path in ("/collections", "/collections/wards", "/collections/wards/items", "/catalog", "/ready"):
            started = time.monotonic()
            answer = down.get(path)
            assert answer.status_code == 503, (path, answer.text)
            assert answer.json()["code"] == "database_unavailable" and int(answer.headers["retry-after"]) >= 1
            assert time.monotonic() - started < 1, f"{path} waited for a pool instead of failing fast"
        assert down.get("/health").status_code == 200


def _raw(port: int, request: bytes) -> tuple[int, str, dict[str, object]]:
    """Send raw bytes (no client library limits the URL), return status, content type and the JSON body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers.get("content-type", ""), json.loads(body)


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GET /collections?x=" + b"a" * 60_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414, "uri_too_long"),
        (b"GET /collections?x=" + b"a" * 300_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414, "uri_too_long"),
        (b"GET /collections HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431, "headers_too_large"),
        (
            b"GET /collections HTTP/1.1\r\nHost: t\r\n"
            + b"".join(b"X-H%d: v\r\n" % i for i in range(20_000))
            + b"\r\n",
            431,
            "headers_too_large",
        ),
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "bad_request"),
    ],
    ids=["url-60KiB", "url-300KiB", "header-100KiB", "20000-headers", "garbage"],
)
def test_oversized_urls_and_headers_get_the_json_error(
    live_server: LiveServer, request_bytes: bytes, status: int, code: str
) -> None:
    got_status, content_type, body = _raw(live_server.port, request_bytes)
    assert (got_status, content_type, body["code"]) == (status, "application/json", code)


def test_an_address_over_its_rate_gets_429_naming_the_limit(database_url: str, app_data_dir: Path) -> None:
    settings = Settings(data_dir=app_data_dir, rate_limit="5/minute", rate_limit_loopback=True)
    with TestClient(create_app(settings, database_url)) as limited:
        statuses = [limited.get("/health").status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        refused = limited.get("/health", headers={"Origin": "https://example.org"})
        assert refused.json()["code"] == "rate_limited" and refused.json()["limit"] == "rate 5 per 1 minute"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["access-control-allow-origin"] == "*"  # a web page can read why


def test_local_clients_are_not_rate_limited_unless_configured(database_url: str, app_data_dir: Path) -> None:
    settings = Settings(data_dir=app_data_dir, rate_limit="5/minute")
    with TestClient(create_app(settings, database_url)) as local:
        assert {local.get("/health").status_code for _ in range(12)} == {200}


@pytest.fixture(scope="module")
def download_layer(database_url: str, live_server: LiveServer) -> Iterator[str]:
    """A small public table published in place (with change triggers), so the test can edit it directly."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "DROP TABLE IF EXISTS public.download_once; CREATE TABLE public.download_once AS "
            "SELECT g AS id, 'stop ' || g AS name, "
            "ST_SetSRID(ST_MakePoint(-114.07 + g / 1000.0, 51.04), 4326)::geometry(Point, 4326) AS geom "
            "FROM generate_series(1, 500) AS g"
        )
    publish_table(
        database_url, manifest("download once", ["id", "name"], id_field="id", source={"table": "public.download_once"})
    )
    url = f"{live_server.url}/collections/download%20once"
    deadline = time.monotonic() + 15
    while httpx.get(url).status_code != 200:
        assert time.monotonic() < deadline, "the layer never appeared"
        time.sleep(0.1)
    yield url
    drop_layer(database_url, "download once", "public.download_once")


def test_a_download_is_built_once_for_everyone_who_asks(
    download_layer: str, app_data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="layers.downloads")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: httpx.get(f"{download_layer}/download.gpkg", timeout=60), range(8)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.headers["etag"] for a in answers}) == 1 and len({a.content for a in answers}) == 1
    builds = [r for r in caplog.records if "download once.gpkg built" in r.getMessage()]
    assert len(builds) == 1, [r.getMessage() for r in caplog.records]
    first = answers[0]
    assert int(first.headers["content-length"]) == len(first.content) and first.headers["last-modified"]
    files = list((app_data_dir / "downloads").glob("download_once-*/v*.gpkg"))
    assert len(files) == 1 and files[0].stat().st_size == len(first.content)


def test_downloads_answer_conditional_and_range_requests(download_layer: str) -> None:
    whole = httpx.get(f"{download_layer}/download.csv")
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    again = httpx.get(f"{download_layer}/download.csv", headers={"If-None-Match": whole.headers["etag"]})
    assert again.status_code == 304 and not again.content
    part = httpx.get(f"{download_layer}/download.csv", headers={"Range": "bytes=10-29"})
    assert part.status_code == 206 and part.content == whole.content[10:30]
    assert part.headers["content-range"] == f"bytes 10-29/{len(whole.content)}"
    tail = httpx.get(f"{download_layer}/download.csv", headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.content == whole.content[-5:]
    beyond = httpx.get(f"{download_layer}/download.csv", headers={"Range": f"bytes={len(whole.content) + 10}-"})
    assert beyond.status_code == 416


def test_an_edit_replaces_the_stored_download(download_layer: str, database_url: str, app_data_dir: Path) -> None:
    before = httpx.get(f"{download_layer}/download.geojson")
    assert before.status_code == 200 and b"renamed stop" not in before.content
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE public.download_once SET name = 'renamed stop' WHERE id = 7")
    deadline = time.monotonic() + 10
    while b"renamed stop" not in (after := httpx.get(f"{download_layer}/download.geojson")).content:
        assert time.monotonic() < deadline, "the download never showed the edit"
        time.sleep(0.1)
    assert after.headers["etag"] != before.headers["etag"]
    assert len(list((app_data_dir / "downloads").glob("download_once-*/v*.geojson"))) == 1


def test_a_request_asking_to_upgrade_to_a_websocket_is_answered_as_plain_http(
    live_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    # No route speaks WebSocket; uvicorn's default would switch protocols and hand the app a WebSocket connection.
    uvicorn_log = logging.getLogger("uvicorn.error")  # uvicorn's loggers do not reach the root logger
    uvicorn_log.addHandler(caplog.handler)
    try:
        status, content_type, body = _raw(live_server.port, WEBSOCKET_UPGRADE)
    finally:
        uvicorn_log.removeHandler(caplog.handler)
    assert (status, content_type) == (200, "application/json") and body["status"] == "ok", body
    # Anyone may ask: no warning per request (uvicorn's would also advise installing a WebSocket library).
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records
