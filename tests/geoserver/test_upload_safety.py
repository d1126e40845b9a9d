"""Uploads over HTTP: every bad input is a clear 4xx JSON error naming the problem; nothing is published, nothing is
left on disk, and the layer's previous version survives a failed replacement. Quotas answer 413, 403 and 429.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import mapbox_vector_tile
import morecantile
import pytest
from fastapi.testclient import TestClient

from tests.support.access import issue
from tests.support.layers import point
from tests.support.servers import LiveServer
from tests.support.uploads import bearer, geojson_bytes, leftovers, replace, upload

GROUP = "safety-club"
ONE = geojson_bytes([({"name": "a"}, point(-114.07, 51.04))])
VRT = b"<OGRVRTDataSource><OGRVRTLayer name='x'><SrcDataSource>/etc/passwd</SrcDataSource></OGRVRTLayer>"
ENTITIES = b'<?xml version="1.0"?><!DOCTYPE k [<!ENTITY x SYSTEM "file:///etc/passwd">]><kml>&x;</kml>'
BOWTIE = {"type": "Polygon", "coordinates": [[[-114.07, 51.04], [-114.06, 51.05], [-114.06, 51.04], [-114.07, 51.05],
                                              [-114.07, 51.04]]]}  # fmt: skip


@pytest.fixture(scope="module")
def tokens(client: TestClient, database_url: str) -> dict[str, str]:
    staff = issue(database_url, "gis@city", staff=True)
    assert client.post("/groups", json={"id": GROUP, "name": "Safety club"}, headers=bearer(staff)).status_code == 201
    return {"staff": staff, "editor": issue(database_url, "ed@safety", {GROUP: "editor"})}


def fields(layer_id: str, **extra: str) -> dict[str, str]:
    return {"id": layer_id, "title": "Test upload", "group": GROUP, **extra}


GRID_FILE = "+proj=tmerc +lon_0=-114 +k=0.9999 +x_0=0 +y_0=0 +ellps=GRS80 +nadgrids=/etc/passwd +type=crs"


def with_crs(crs: dict[str, Any], body: bytes = ONE) -> bytes:
    """A GeoJSON FeatureCollection with a crs member (GeoJSON of 2008; RFC 7946 dropped it)."""
    return json.dumps({**json.loads(body), "crs": crs}).encode()


BAD: list[tuple[str, str, bytes, dict[str, str], int, str]] = [
    ("no file", "", b"", {}, 400, "file"),
    ("hostile id", "x.geojson", ONE, {"id": "../../etc"}, 400, "id"),
    ("id with a slash", "x.geojson", ONE, {"id": "a/b"}, 400, "id"),
    ("id of a City layer", "x.geojson", ONE, {"id": "wards"}, 409, "id"),
    ("unknown form field", "x.geojson", ONE, {"colour": "red"}, 400, "colour"),
    ("unknown format", "x.txt", b"hello", {}, 400, "file"),
    ("a VRT named GeoJSON", "x.geojson", VRT, {}, 422, ""),
    ("KML with entities", "x.kml", ENTITIES, {}, 422, ""),
    ("no CRS", "x.csv", b"name,x,y\na,700000,5660000\n", {}, 422, ""),
    ("swapped coordinates", "x.csv", b"name,lon,lat\na,51.04,-114.07\n", {}, 422, ""),
    ("no features", "x.geojson", geojson_bytes([]), {}, 422, "file"),
    ("private field not in the file", "x.geojson", ONE, {"private_fields": "secret"}, 422, "private_fields"),
    ("time field not a date", "x.geojson", geojson_bytes([({"t": "soon"}, point(-114.07, 51.04))]),
     {"time_start": "t"}, 422, "t"),
    ("min_zoom out of range", "x.geojson", ONE, {"min_zoom": "40"}, 400, "min_zoom"),
    ("crs naming a server file", "x.csv", b"name,x,y\na,700000,5660000\n", {"crs": GRID_FILE}, 422, ""),
    ("crs not a code", "x.csv", b"name,x,y\na,700000,5660000\n", {"crs": "+proj=utm +zone=11"}, 422, ""),
    ("file crs naming a server file", "x.geojson", with_crs({"type": "name", "properties": {"name": GRID_FILE}}), {},
     422, ""),
]  # fmt: skip


@pytest.mark.parametrize(("case", "name", "content", "extra", "status", "parameter"), BAD, ids=[b[0] for b in BAD])
def test_bad_uploads_are_clear_4xx_errors_and_leave_nothing(
    client: TestClient, tokens: dict[str, str], app_data_dir: Path, case: str, name: str, content: bytes,
    extra: dict[str, str], status: int, parameter: str,
) -> None:  # fmt: skip
    layer_id = f"safety {case}"
    form = {**fields(layer_id), **extra}
    response: Any
    if name:
        response = upload(client, tokens["editor"], name, content, **form)
    else:
        response = client.post(
            "/collections", data=form, files={"other": ("a", b"b")}, headers=bearer(tokens["editor"])
        )
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"code", "description"} and "Traceback" not in body["description"]
    assert "/tmp" not in body["description"] and "upload-" not in body["description"]
    assert "unexpected" not in body["description"]  # a reason of our own, not a library's error passed on
    if parameter:
        assert body.get("parameter") == parameter
    assert client.get(f"/collections/{quote(form['id'], safe='')}", headers=bearer(tokens["staff"])).status_code in (
        404, 200 if form["id"] == "wards" else 404,
    )  # fmt: skip
    assert leftovers(app_data_dir) == []


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer gs_nobody"}, 401), ({"Authorization": "Basic Zm9vOmJhcg=="}, 401)],
)
def test_uploads_need_a_valid_token(client: TestClient, headers: dict[str, str], status: int) -> None:
    response = client.post("/collections", files={"file": ("x.geojson", ONE)}, data=fields("safety anon"),
                           headers=headers)  # fmt: skip
    assert response.status_code == status and response.headers["www-authenticate"] == "Bearer"


def test_a_token_in_the_query_string_is_refused(client: TestClient, tokens: dict[str, str]) -> None:
    response = client.get(f"/me?access_token={tokens['editor']}")
    assert response.status_code == 400 and tokens["editor"] not in response.text


def test_invalid_empty_mixed_and_3d_geometries_are_repaired_or_reported(
    client: TestClient, tokens: dict[str, str]
) -> None:
    features = [
        ({"name": "bowtie"}, BOWTIE),
        ({"name": "nothing"}, None),
        ({"name": "peak"}, {"type": "Point", "coordinates": [-114.07, 51.04, 1100.0]}),
        ({"name": "path"}, {"type": "LineString", "coordinates": [[-114.07, 51.04], [-114.06, 51.05]]}),
    ]
    made = upload(client, tokens["editor"], "mixed.geojson", geojson_bytes(features), **fields("safety mixed"))
    assert made.status_code == 201, made.text
    assert made.json()["ingest"] == {"version": 1, "features": 3, "repaired": 1, "dropped_empty": 1}
    assert made.json()["geometryType"] == "Geometry"
    items = client.get("/collections/safety%20mixed/items", headers=bearer(tokens["editor"])).json()["features"]
    assert all(len(f["geometry"]["coordinates"]) == 2 for f in items if f["geometry"]["type"] == "Point")  # 2D
    t = morecantile.tms.get("WebMercatorQuad").tile(-114.07, 51.04, 14)  # where the point, polygon and line are
    tile = client.get(f"/tiles/safety%20mixed/14/{t.x}/{t.y}.pbf", headers=bearer(tokens["editor"]))
    assert tile.status_code == 200, tile.text
    assert len(mapbox_vector_tile.decode(tile.content)["safety mixed"]["features"]) >= 2


def test_an_unclosed_ring_is_closed_not_fatal_to_the_file(client: TestClient, tokens: dict[str, str]) -> None:
    square = [[-114.07, 51.04], [-114.06, 51.04], [-114.06, 51.05], [-114.07, 51.05], [-114.07, 51.04]]
    features: list[tuple[dict[str, Any], dict[str, Any] | None]] = [
        ({"name": "closed"}, {"type": "Polygon", "coordinates": [square]}),
        ({"name": "open"}, {"type": "Polygon", "coordinates": [square[:3]]}),
    ]
    made = upload(client, tokens["editor"], "rings.geojson", geojson_bytes(features), **fields("safety rings"))
    assert made.status_code == 201, made.text
    assert made.json()["ingest"]["features"] == 2
    items = client.get("/collections/safety%20rings/items", headers=bearer(tokens["editor"])).json()["features"]
    mended = next(f for f in items if f["properties"]["name"] == "open")["geometry"]["coordinates"][0]
    assert len(mended) == 4 and mended[0] == mended[-1]


def test_a_failed_replacement_keeps_the_previous_version(client: TestClient, tokens: dict[str, str]) -> None:
    made = upload(client, tokens["editor"], "v1.geojson", ONE, **fields("safety versions"))
    assert made.status_code == 201
    v2 = geojson_bytes([({"name": "b"}, point(-114.06, 51.04)), ({"name": "c"}, point(-114.05, 51.04))])
    replaced = replace(client, tokens["editor"], "safety versions", "v2.geojson", v2)
    assert replaced.status_code == 200 and replaced.json()["ingest"]["version"] == 2
    broken = replace(client, tokens["editor"], "safety versions", "v3.geojson", b'{"type": "FeatureCollection", "feat')
    assert broken.status_code == 422
    items = client.get("/collections/safety%20versions/items", headers=bearer(tokens["editor"])).json()
    assert {f["properties"]["name"] for f in items["features"]} == {"b", "c"}


@pytest.fixture
def quota_group(client: TestClient, tokens: dict[str, str], database_url: str) -> Iterator[tuple[str, str]]:
    """A group of its own for quota tests, and one of its editors."""
    group = f"quota-{time.monotonic_ns() % 10**9}"
    assert (
        client.post("/groups", json={"id": group, "name": "Quotas"}, headers=bearer(tokens["staff"])).status_code == 201
    )
    yield group, issue(database_url, f"ed@{group}", {group: "editor"})


def _quota(client: TestClient, tokens: dict[str, str], group: str, **quotas: Any) -> None:
    assert client.patch(f"/groups/{group}", json=quotas, headers=bearer(tokens["staff"])).status_code == 200


def test_an_upload_over_the_groups_size_limit_is_413(
    client: TestClient, tokens: dict[str, str], quota_group: tuple[str, str], app_data_dir: Path
) -> None:
    group, editor = quota_group
    _quota(client, tokens, group, max_upload_mb=1)
    big = geojson_bytes([({"pad": "x" * 1000}, point(-114.07, 51.04 + i / 10000)) for i in range(1500)])
    response = upload(client, editor, "big.geojson", big, id="quota big", title="Big", group=group)
    assert response.status_code == 413 and response.json()["parameter"] == "file"
    assert leftovers(app_data_dir) == []


def test_too_many_features_too_many_layers_and_too_many_uploads(
    client: TestClient, tokens: dict[str, str], quota_group: tuple[str, str]
) -> None:
    group, editor = quota_group
    _quota(client, tokens, group, max_features=2, max_layers=1, uploads_per_hour=2)
    three = geojson_bytes([({"n": i}, point(-114.07, 51.04 + i / 1000)) for i in range(3)])
    assert upload(client, editor, "three.geojson", three, id="quota three", title="3", group=group).status_code == 413
    assert upload(client, editor, "one.geojson", ONE, id="quota one", title="1", group=group).status_code == 201
    second = upload(client, editor, "one.geojson", ONE, id="quota two", title="2", group=group)
    assert second.status_code == 403 and second.json()["code"] == "limit_reached"
    assert replace(client, editor, "quota one", "one.geojson", ONE).status_code == 200  # 2 uploads this hour
    throttled = replace(client, editor, "quota one", "one.geojson", ONE)
    assert throttled.status_code == 429 and throttled.json()["code"] == "quota_exceeded"
    assert 0 < int(throttled.headers["retry-after"]) <= 3600


def test_an_upload_cut_off_half_way_publishes_nothing_and_leaves_nothing(
    live_server: LiveServer, client: TestClient, tokens: dict[str, str], app_data_dir: Path
) -> None:
    boundary = "cutoffboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="id"\r\n\r\nsafety cut\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nCut\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="group"\r\n\r\n{GROUP}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="cut.geojson"\r\n\r\n'
    ).encode() + ONE[: len(ONE) // 2]
    request = (
        f"POST /collections HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {tokens['editor']}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(head) + 5000}\r\n\r\n"
    ).encode() + head
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as sock:
        sock.sendall(request)
        deadline = time.monotonic() + 10
        while not leftovers(app_data_dir):  # the server is writing the file part when the client goes away
            assert time.monotonic() < deadline, "the server never started receiving the upload"
            time.sleep(0.05)
    deadline = time.monotonic() + 10
    while leftovers(app_data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leftovers(app_data_dir) == []
    assert client.get("/collections/safety%20cut", headers=bearer(tokens["staff"])).status_code == 404


MALFORMED = [
    ("garbage part", b"--BB\r\n\x00\x01\x02garbage\r\n\r\n--BB--\r\n"),
    ("filename of 5,000 characters",
     b'--BB\r\nContent-Disposition: form-data; name="file"; filename="' + b"a" * 5000
     + b'.geojson"\r\n\r\nx\r\n--BB--\r\n'),
    ("500 header lines",
     b"--BB\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(500)) + b"\r\nx\r\n--BB--\r\n"),
    ("line feeds only", b'--BB\nContent-Disposition: form-data; name="id"\n\nx\n--BB--\n'),
]  # fmt: skip


@pytest.mark.parametrize("body", [m[1] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_a_body_that_is_not_multipart_after_all_is_a_400(
    client: TestClient, tokens: dict[str, str], app_data_dir: Path, body: bytes
) -> None:
    answer = client.post(
        "/collections",
        content=body,
        headers={**bearer(tokens["editor"]), "Content-Type": "multipart/form-data; boundary=BB"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid_parameter" and answer.json()["parameter"] == "body"
    assert leftovers(app_data_dir) == []


def _linked_crs_files(href: str) -> dict[str, bytes]:
    """GeoJSON files whose crs member points GDAL at `href`, written the ways a pattern match would miss."""
    link = {"type": "link", "properties": {"href": href, "type": "esriwkt"}}
    escaped = json.dumps({"type": "URL", "properties": {"url": href}}).replace("/", "\\/")
    one = json.loads(ONE)
    feature = {**one["features"][0], "geometry": {**one["features"][0]["geometry"], "crs": link}}
    return {
        "link": with_crs(link),
        "url, slashes escaped": ONE.replace(b'{"type"', b'{"crs": ' + escaped.encode() + b', "type"', 1),
        "names escaped": with_crs(link).replace(b'"link"', b'"\\u006cink"').replace(b'"href"', b'"\\u0068ref"'),
        "key escaped, upper case": with_crs(link).replace(b'"crs"', b'"\\u0043RS"'),
        "padding first": with_crs({"padding": "x" * 4096, **link}),
        "on a geometry": json.dumps({**one, "features": [feature]}).encode(),
    }


def test_a_crs_linked_from_a_file_is_never_fetched(client: TestClient, tokens: dict[str, str]) -> None:
    asked: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(0.2)
        stop = threading.Event()

        def serve() -> None:  # whatever connects is recorded
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                with conn:
                    asked.append(conn.recv(1024))

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        answers: dict[str, Any] = {}
        try:
            for case, body in _linked_crs_files(f"http://127.0.0.1:{listener.getsockname()[1]}/crs.prj").items():
                layer_id = f"safety linked {len(answers)}"
                answers[case] = upload(client, tokens["editor"], "linked.geojson", body, **fields(layer_id))
        finally:
            stop.set()
            thread.join(timeout=5)
    for case, answer in answers.items():
        assert answer.status_code == 422 and "crs" in answer.json()["description"], (case, answer.text)
    assert asked == []
