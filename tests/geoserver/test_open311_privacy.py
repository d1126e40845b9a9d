"""Privacy by design for 311: a canary in every requester field (and in the text and media link of services that
may not publish them) never reaches any answer or log line; locations are published at their service's precision
while the stored point stays exact for City staff.
"""

from __future__ import annotations

import gzip
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import morecantile
import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.support.access import issue
from tests.support.open311 import NOISE, POTHOLE, form, place, remove_submitted
from tests.support.servers import ready_app
from tests.support.uploads import bearer

CANARY = "Canary311x"
REQUESTER = {
    "email": f"{CANARY.lower()}@example.org", "first_name": f"{CANARY}First", "last_name": f"{CANARY}Last",
    "phone": "+1 403 555 7391 x4417", "device_id": f"{CANARY}-device", "account_id": f"{CANARY}-account",
}  # fmt: skip
SECRETS = [CANARY, CANARY.lower(), REQUESTER["phone"]]
WMQ = morecantile.tms.get("WebMercatorQuad")


@pytest.fixture(scope="module")
def app(database_url: str, demo_city: dict[str, str], app_data_dir: Path) -> Iterator[TestClient]:
    """An app on the demo City, for the canary's submissions."""
    with ready_app(database_url, app_data_dir, open311_per_address_per_hour=1000) as client:
        yield client
    remove_submitted(database_url)


@pytest.fixture(scope="module")
def submitted(app: TestClient, database_url: str) -> dict[str, Any]:
    """Requests carrying canaries: a pothole (text and media published) and noise (neither; block precision)."""
    key = issue(database_url, "canary-app", open311=True)
    pothole_at, noise_at = place(database_url, 101), place(database_url, 102)
    pothole = app.post("/open311/v2/requests.json", data=form(
        key, pothole_at, POTHOLE, description="Published text: hole by the school", address_string="Corner store",
        media_url="https://media.example.org/hole.jpg", **REQUESTER,
    ))  # fmt: skip
    noise = app.post("/open311/v2/requests.json", data=form(
        key, noise_at, NOISE, description=f"{CANARY} next door again", address_string=f"12 {CANARY} Crescent",
        media_url=f"https://media.example.org/{CANARY}.mp4", **REQUESTER,
    ))  # fmt: skip
    assert pothole.status_code == noise.status_code == 200, (pothole.text, noise.text)
    token = noise.json()[0]["token"]
    noise_id = app.get(f"/open311/v2/tokens/{token}.json").json()[0]["service_request_id"]
    staff = issue(database_url, "canary-staff", staff=True)
    return {"pothole": pothole.json()[0]["service_request_id"], "pothole_at": pothole_at, "noise": noise_id,
            "noise_at": noise_at, "token": token, "staff": staff}  # fmt: skip


def _paths(s: dict[str, Any]) -> list[str]:
    lon, lat = s["noise_at"]
    tiles = [f"/tiles/service_requests/{z}/{t.x}/{t.y}.pbf" for z in (12, 16) for t in [WMQ.tile(lon, lat, z)]]
    t16 = WMQ.tile(lon, lat, 16)
    items = "/collections/service_requests/items"
    return [
        *(f"/open311/v2/requests.{f}" for f in ("json", "xml")),
        *(f"/open311/v2/requests/{s[k]}.{f}" for k in ("pothole", "noise") for f in ("json", "xml")),
        f"/open311/v2/tokens/{s['token']}.xml",
        "/open311/v2/stats?by=ward,service_code,month",
        "/open311/v2/stats?by=month&format=csv",
        *tiles,
        f"/tiles/service_requests,wards/16/{t16.x}/{t16.y}.pbf",
        f"{items}?limit=10000",
        f"{items}?limit=50&f=html",
        f"{items}/{s['noise']}",
        f"{items}/{s['noise']}?f=html",
        f"{items}/{s['noise']}/versions",
        f"{items}/{s['noise']}/versions/1",
        *(f"/collections/service_requests/download.{f}" for f in ("geojson", "csv", "gpkg")),
        f"/nearby?lon={lon}&lat={lat}&layers=service_requests&limit=20",
        f"/here?lon={lon}&lat={lat}",
        f"/search?q=Crescent&lon={lon}&lat={lat}",  # a word of the noise report's (unpublished) address
        "/collections/service_requests/changes?since=0",
        "/collections/service_requests/queryables",
        "/catalog",
    ]


def _body(response: Any) -> bytes:
    body = response.content
    return gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body


def test_requester_fields_never_leave_the_database(
    app: TestClient, submitted: dict[str, Any], database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: dict[str, bytes] = {}
    for path in _paths(submitted):
        for headers in ({}, bearer(submitted["staff"])):
            response = app.get(path, headers=headers)
            assert response.status_code in (200, 204), (path, response.status_code, response.text[:300])
            seen[f"{path} {bool(headers)}"] = _body(response) + str(response.headers).encode()
    audit = app.get("/audit?layer=service_requests", headers=bearer(submitted["staff"]))
    assert audit.status_code == 200, audit.text[:300]  # a refusal would leave nothing to search
    seen["audit"] = audit.content
    for where, body in seen.items():
        for secret in SECRETS:
            assert secret.encode() not in body, f"{secret!r} leaked in {where}"
    for record in caplog.records:
        for secret in SECRETS:
            assert secret not in record.getMessage(), f"{secret!r} leaked in a log record"
    # Controls: the canaries were stored, and what the pothole may publish is published.
    with psycopg.connect(database_url, autocommit=True) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM geoserver.open311_requesters WHERE first_name = %s", [REQUESTER["first_name"]]
        ).fetchone()
    assert stored is not None and stored[0] == 2
    one = app.get(f"/open311/v2/requests/{submitted['pothole']}.json").json()[0]
    assert one["description"] == "Published text: hole by the school" and one["address"] == "Corner store"
    assert one["media_url"] == "https://media.example.org/hole.jpg"


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dx = (a[0] - b[0]) * 111_320 * math.cos(math.radians(a[1]))
    return math.hypot(dx, (a[1] - b[1]) * 110_570)


def test_locations_are_published_at_their_services_precision(
    app: TestClient, submitted: dict[str, Any], database_url: str
) -> None:
    staff = bearer(submitted["staff"])
    for kind, block in (("pothole", False), ("noise", True)):
        exact = submitted[f"{kind}_at"]
        public = app.get(f"/open311/v2/requests/{submitted[kind]}.json").json()[0]
        shown = (public["long"], public["lat"])
        item = app.get(f"/collections/service_requests/items/{submitted[kind]}").json()
        in_layer = tuple(item["geometry"]["coordinates"])
        for_staff = app.get(f"/open311/v2/requests/{submitted[kind]}.json", headers=staff)
        assert for_staff.headers["cache-control"] == "private, no-store"
        staff_sees = (for_staff.json()[0]["long"], for_staff.json()[0]["lat"])
        assert _metres(staff_sees, exact) < 0.5
        assert _metres(in_layer, shown) < 0.5  # the layer, its tiles and near-me hold the published point
        if block:
            assert 1 < _metres(shown, exact) <= 71 and public["address"] is None
        else:
            assert _metres(shown, exact) < 0.5
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT ST_X(geom), ST_Y(geom) FROM geoserver.open311_requests WHERE request_id = %s", [submitted["noise"]]
        ).fetchone()
    assert row is not None and _metres((row[0], row[1]), submitted["noise_at"]) < 0.01  # stored exactly
