"""Bad GeoReport submissions: the specification's error body with 400, 403 or 404 (429 past a rate limit), and
nothing stored: not in the 311 layer, not in the Open311 tables. Errors never repeat what the resident sent.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import Point

from layers import demo
from tests.support.access import issue
from tests.support.open311 import POTHOLE, form, place, remove_submitted, stored_counts
from tests.support.servers import ready_app

SECRET = "Private-Detail-4471"  # sent in requester fields and text: must never come back in an error


@pytest.fixture(scope="module")
def app(database_url: str, demo_city: dict[str, str], app_data_dir: Path) -> Iterator[TestClient]:
    """An app on the demo City, its client at an address of its own."""
    with ready_app(database_url, app_data_dir, "198.51.100.7", open311_per_address_per_hour=1000) as client:
        yield client
    remove_submitted(database_url)


@pytest.fixture(scope="module")
def key(database_url: str) -> str:
    """An app's --open311 key."""
    return issue(database_url, "bad-input-app", open311=True)


def _outside_point() -> tuple[float, float]:
    """A point in the demo City's extent but outside its boundary."""
    boundary = demo.city_boundary()
    xmin, ymin, xmax, ymax = demo.EXTENT_LONLAT
    for lon, lat in ((xmin + 0.001, ymin + 0.001), (xmax - 0.001, ymax - 0.001), (xmin + 0.001, ymax - 0.001)):
        if not boundary.contains(Point(lon, lat)):
            return lon, lat
    raise AssertionError("every corner of the extent is inside the City")


def _refused(app: TestClient, database_url: str, fields: dict[str, Any], status: int, fmt: str = "json") -> str:
    before = stored_counts(database_url)
    response = app.post(f"/open311/v2/requests.{fmt}", data=fields)
    assert response.status_code == status, (fields, response.text)
    assert SECRET not in response.text
    if fmt == "json":
        [error] = response.json()
        assert error["code"] == status
        description = str(error["description"])
    else:
        root = ET.fromstring(response.content)
        assert root.tag == "errors" and root.findtext("error/code") == str(status)
        description = root.findtext("error/description") or ""
    assert description and "Traceback" not in description and "SELECT" not in description
    assert stored_counts(database_url) == before, "a refused request stored something"
    return description


def test_bad_submissions_are_refused_and_store_nothing(app: TestClient, database_url: str, key: str) -> None:
    here = place(database_url, 10)
    good = form(key, here, POTHOLE, email=f"{SECRET}@example.org", first_name=SECRET, description=SECRET)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**good, "service_code": "NO_SUCH"}, 404, "service_code"),
        ({k: v for k, v in good.items() if k != "service_code"}, 400, "service_code"),
        ({k: v for k, v in good.items() if k not in ("lat", "long")}, 400, "location"),
        ({k: v for k, v in good.items() if k != "lat"}, 400, "together"),
        ({**{k: v for k, v in good.items() if k not in ("lat", "long")}, "address_string": "1 Main St"}, 400, "lat"),
        (form(key, _outside_point(), POTHOLE), 400, "boundary"),
        ({**good, "lat": "nan"}, 400, "lat"),
        ({**good, "long": "1e309"}, 400, "long"),
        ({**good, "lat": "95"}, 400, "lat"),
        ({k: v for k, v in good.items() if k != "attribute[SIZE]"}, 400, "SIZE"),
        ({**good, "attribute[SIZE]": "enormous"}, 400, "SIZE"),
        ({**good, "attribute[COLOUR]": "red"}, 400, "COLOUR"),
        (form(key, here, {"service_code": "TREE", "attribute[TREES]": "three"}), 400, "TREES"),
        (form(key, here, {"service_code": "WATER_LEAK", "attribute[SINCE]": "last week"}), 400, "SINCE"),
        (form(key, here, {"service_code": "NOISE", "attribute[SOURCES][]": ["music", "opera"]}), 400, "SOURCES"),
        ({**good, "description": "x" * 4001}, 400, "description"),
        ({**good, "first_name": "x" * 101}, 400, "first_name"),
        ({**good, "email": "x" * 250 + "@example.org"}, 400, "email"),
        ({**good, "email": "not an address"}, 400, "email"),
        ({**good, "phone": SECRET}, 400, "phone"),
        ({**good, "media_url": "javascript:alert(1)"}, 400, "media_url"),
        ({**good, "media_url": "https://example.org/" + "x" * 2100}, 400, "media_url"),
        ({**good, "device_id": "a\x00b"}, 400, "device_id"),
        ({**good, "address_string": "line\nbreak"}, 400, "address_string"),
        ({**good, "jurisdiction_id": "elsewhere.example"}, 404, "jurisdiction_id"),
        ({**good, "favourite_colour": "blue"}, 400, "favourite_colour"),
        ({**good, "service_code": ["POTHOLE", "TREE"]}, 400, "more than once"),
        ({k: v for k, v in good.items() if k != "api_key"}, 403, "api_key"),
        ({**good, "api_key": "gs_not-a-real-key"}, 403, "api_key"),
    ]
    for fields, status, words in cases:
        assert words in _refused(app, database_url, fields, status), fields
    assert "service_code" in _refused(app, database_url, {**good, "service_code": "NO_SUCH"}, 404, fmt="xml")


def test_keys_that_may_not_submit_are_refused(app: TestClient, database_url: str) -> None:
    here = place(database_url, 11)
    plain = issue(database_url, "reads-only")
    _refused(app, database_url, form(plain, here, POTHOLE), 403)
    group_token = issue(database_url, "left-the-group", {"leavers": "viewer"}, scope="leavers")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM geoserver.memberships WHERE subject = 'left-the-group'")
    _refused(app, database_url, form(group_token, here, POTHOLE), 403)
    revoked = issue(database_url, "revoked-app", open311=True)
    assert app.post("/open311/v2/requests.json", data=form(revoked, here, POTHOLE)).status_code == 200
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE geoserver.api_tokens SET revoked_at = now() WHERE subject = 'revoked-app'")
    _refused(app, database_url, form(revoked, place(database_url, 12), POTHOLE), 403)


def test_keys_never_travel_in_the_url_and_bodies_are_bounded(app: TestClient, database_url: str, key: str) -> None:
    fields = form(key, place(database_url, 13), POTHOLE)
    before = stored_counts(database_url)
    in_url = app.post(f"/open311/v2/requests.json?api_key={key}", data={k: v for k, v in fields.items()})
    assert in_url.status_code == 400 and key not in in_url.text
    as_json = app.post("/open311/v2/requests.json", json=fields)
    assert as_json.status_code == 400 and "x-www-form-urlencoded" in as_json.json()[0]["description"]
    huge = app.post("/open311/v2/requests.json", data={**fields, "description": "x" * 70_000})
    assert huge.status_code == 413 and huge.json()[0]["code"] == 413
    assert stored_counts(database_url) == before


def test_ids_and_notes_postgresql_cannot_take_are_refused_in_georeport_form(
    app: TestClient, database_url: str, key: str
) -> None:
    """A NUL in an id, a token or a filter, or a control character in staff's notes (XML cannot carry it), is the
    client's mistake: a 400 or 404 in GeoReport's form, never a 500, and nothing changes."""
    staff = {"Authorization": f"Bearer {issue(database_url, 'notes-agent', staff=True)}"}
    created = app.post("/open311/v2/requests.json", data=form(key, place(database_url, 14), POTHOLE))
    assert created.status_code == 200, created.text
    request_id = created.json()[0]["service_request_id"]
    cases = [
        (app.get("/open311/v2/requests/%00.json"), 404),
        (app.get("/open311/v2/requests.xml?service_request_id=%00"), 400),
        (app.get("/open311/v2/requests.json?status=open%00"), 400),
        (app.get("/open311/v2/tokens/%00.json"), 404),
        (app.post("/open311/v2/requests/%00/status.json", data={"status": "closed"}, headers=staff), 404),
        (app.post(f"/open311/v2/requests/{request_id}/status.xml", data={"status": "closed", "status_notes": "a\x01b"},
                  headers=staff), 400),
    ]  # fmt: skip
    for response, status in cases:
        assert response.status_code == status, (response.request.url, response.text)
        if response.request.url.path.endswith(".xml"):
            assert ET.fromstring(response.content).findtext("error/code") == str(status)
        else:
            assert response.json()[0]["code"] == status
    again = app.get(f"/open311/v2/requests/{request_id}.json", headers=staff).json()[0]
    assert again["status"] == "open" and again["status_notes"] is None


def _submit(client: TestClient, key: str, n: int, database_url: str) -> Any:
    return client.post("/open311/v2/requests.json", data=form(key, place(database_url, n), POTHOLE))


def test_submissions_are_rate_limited_per_key_and_per_address(
    database_url: str, demo_city: dict[str, str], app_data_dir: Path
) -> None:
    key, other_key = issue(database_url, "busy-app", open311=True), issue(database_url, "other-app", open311=True)
    limits = {"open311_per_key_per_hour": 3, "open311_per_address_per_hour": 5}
    try:
        with ready_app(database_url, app_data_dir, "203.0.113.9", **limits) as client:
            for n in range(3):
                assert _submit(client, key, 20 + n, database_url).status_code == 200
            refused = _submit(client, key, 30, database_url)
            assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
            assert refused.json()[0]["code"] == 429
            for n in range(2):  # another key from the same address: the address has two left
                assert _submit(client, other_key, 40 + n, database_url).status_code == 200
            assert _submit(client, other_key, 50, database_url).status_code == 429
        with ready_app(database_url, app_data_dir, "203.0.113.10", **limits) as elsewhere:
            # The key is spent wherever it is used; the other key is fine from another address.
            assert _submit(elsewhere, key, 60, database_url).status_code == 429
            assert _submit(elsewhere, other_key, 61, database_url).status_code == 200
    finally:
        remove_submitted(database_url)


def test_the_address_limit_counts_the_client_a_trusted_proxy_forwards_for(
    database_url: str, demo_city: dict[str, str], app_data_dir: Path
) -> None:
    key = issue(database_url, "proxied-app", open311=True)
    limits = {"open311_per_key_per_hour": 100, "open311_per_address_per_hour": 2, "trusted_proxies": "10.0.0.0/8"}

    def submit(client: TestClient, n: int, forwarded: str) -> int:
        fields = form(key, place(database_url, n), POTHOLE)
        return client.post("/open311/v2/requests.json", data=fields, headers={"X-Forwarded-For": forwarded}).status_code

    try:
        with ready_app(database_url, app_data_dir, "10.0.0.5", **limits) as proxy:
            assert [submit(proxy, 70 + n, "198.51.100.20") for n in range(3)] == [200, 200, 429]
            # Another resident behind the same proxy has a budget of their own; a forged hop buys nothing.
            assert submit(proxy, 80, "198.51.100.21") == 200
            assert submit(proxy, 81, "6.6.6.6, 198.51.100.20") == 429
        with ready_app(database_url, app_data_dir, "203.0.113.30", **limits) as direct:
            # Not a trusted proxy: its X-Forwarded-For is ignored, and the peer's own address is counted.
            assert [submit(direct, 90 + n, f"198.51.100.{40 + n}") for n in range(3)] == [200, 200, 429]
    finally:
        remove_submitted(database_url)
