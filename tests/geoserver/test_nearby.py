"""`/nearby` and `/here` over HTTP: GeoJSON shape, hours and events at chosen instants, paging, bad input, OpenAPI."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from geoserver.app import create_app
from geoserver.keys import key_file
from layers.catalogue.visibility import Principal
from layers.ingest.load import load_file
from tests.support.access import issue
from tests.support.errors import assert_invalid_parameter
from tests.support.layers import DEMO_NOW, drop_layer, manifest, point, write_geojson
from tests.support.servers import until_ready

DOWNTOWN: dict[str, Any] = {"lon": -114.07, "lat": 51.05}
PRIVATE_FIELDS = ("staff_notes", "organizer_email", "requester_contact", "office_phone_internal", "assessed_value")
GROUP_LAYER = "nearby api overlay"


def get(client: TestClient, path: str = "/nearby", headers: dict[str, str] | None = None, **params: Any) -> Any:
    """GET with query parameters; returns the response."""
    return client.get(path, params=params, headers=headers)


@pytest.fixture(scope="module")
def group_layer(client: TestClient, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A layer only the 'nearby-api-testers' group sees, once the running app has picked it up."""
    path = write_geojson(
        tmp_path_factory.mktemp("g") / "g.geojson", [({"name": "members only"}, point(-114.07, 51.05))]
    )
    load_file(database_url, manifest(GROUP_LAYER, ["name"], visibility="group:nearby-api-testers"), path)
    state = client.app.state.geoserver  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    staff = Principal(subject="nearby-tests", is_staff=True)
    while GROUP_LAYER not in {layer.id for layer in state.registry.visible(staff)}:
        if time.monotonic() > deadline:
            raise AssertionError("the app did not pick up the group layer")
        time.sleep(0.05)
    yield GROUP_LAYER
    drop_layer(database_url, GROUP_LAYER)


def test_nearby_is_geojson_sorted_by_distance_with_what_the_search_adds(client: TestClient) -> None:
    response = get(client, **DOWNTOWN, limit=100, at=DEMO_NOW)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/geo+json"
    assert response.headers["cache-control"] == "private, no-store"
    body = response.json()
    assert body["type"] == "FeatureCollection" and body["numberReturned"] == len(body["features"]) == 100
    distances = [f["properties"]["distance_m"] for f in body["features"]]
    assert distances == sorted(distances)
    layers = set()
    for feature in body["features"]:
        props = feature["properties"]
        layers.add(props["layer"])
        assert feature["type"] == "Feature" and feature["geometry"]["type"]
        assert props["distance_m"] >= 0 and (props["bearing_deg"] is None or 0 <= props["bearing_deg"] < 360)
        assert not set(PRIVATE_FIELDS) & set(props)
        if props["layer"] == "facilities":
            assert {"open_now", "opens_at", "closes_at"} <= set(props)
            assert (props["closes_at"] is not None) == props["open_now"] or props["closes_at"] is None
        if props["layer"] == "events":
            assert isinstance(props["happening_now"], bool)
    assert layers == {"facilities", "events"}  # without `layers`: what serves people, never the ward at 0 m
    facilities = get(client, **DOWNTOWN, layers="facilities", at=DEMO_NOW).json()["features"]
    assert facilities and all({"open_now", "opens_at", "closes_at"} <= set(f["properties"]) for f in facilities)
    assert all("staff_notes" not in f["properties"] for f in facilities)
    assert "CANARY" not in response.text and "example.invalid" not in response.text


def test_without_layers_near_me_means_services_and_boundaries_stay_with_here(client: TestClient) -> None:
    default = get(client, **DOWNTOWN, limit=100, at=DEMO_NOW).json()["features"]
    assert {f["properties"]["layer"] for f in default} == {"facilities", "events"}
    assert default[0]["properties"]["distance_m"] > 0  # no boundary the point stands in comes first at 0 m
    named = "facilities,events,service_requests,wards,communities"
    everything = get(client, **DOWNTOWN, limit=100, at=DEMO_NOW, layers=named).json()["features"]
    assert {"wards", "communities", "service_requests"} <= {f["properties"]["layer"] for f in everything}
    assert everything[0]["properties"]["distance_m"] == 0  # the control: named boundaries still answer
    here = get(client, "/here", **DOWNTOWN).json()
    assert {"wards", "communities"} <= {f["properties"]["layer"] for f in here["features"]}
    described = client.get("/api").json()["paths"]["/nearby"]["get"]
    assert "serve people" in described["description"]
    assert "serve people" in next(p for p in described["parameters"] if p["name"] == "layers")["description"]


@pytest.mark.parametrize(
    ("at", "open_halls", "closes_at"),
    [
        ("2026-03-08T08:59:00Z", 8, "2026-03-08T03:00:00-06:00"),  # spring forward: 02:00 is skipped
        ("2026-03-08T09:00:00Z", 0, None),
        ("2026-11-01T07:30:00Z", 8, "2026-11-01T02:00:00-07:00"),  # 01:30 MDT, before falling back
        ("2026-11-01T08:30:00Z", 8, "2026-11-01T02:00:00-07:00"),  # 01:30 MST, the hour again
        ("2026-11-01T09:00:00Z", 0, None),
        ("2026-07-19T01:59:00-06:00", 8, "2026-07-19T02:00:00-06:00"),  # Saturday's hours, past midnight
        ("2026-07-19T02:00:00-06:00", 0, None),
        ("2027-12-25T18:00:00Z", 0, None),  # a Saturday and a holiday: Saturday hours do not start
    ],
)
def test_open_now_at_chosen_instants(client: TestClient, at: str, open_halls: int, closes_at: str | None) -> None:
    body = get(client, **DOWNTOWN, layers="facilities", category="community_hall", open_now="true", at=at).json()
    assert len(body["features"]) == open_halls
    for feature in body["features"]:
        props = feature["properties"]
        assert props["open_now"] is True and props["closes_at"] == closes_at and props["opens_at"] is None
    everything = get(client, **DOWNTOWN, layers="facilities", category="community_hall", at=at, limit=50).json()
    assert len(everything["features"]) == 8
    assert sum(f["properties"]["open_now"] for f in everything["features"]) == open_halls
    if not open_halls:
        assert all(f["properties"]["opens_at"] for f in everything["features"])


def test_events_that_ended_are_left_out_and_current_ones_marked(client: TestClient) -> None:
    at = datetime.fromisoformat(DEMO_NOW)
    body = get(client, **DOWNTOWN, layers="events", limit=100, at=DEMO_NOW).json()
    assert len(body["features"]) == 100
    happening = 0
    for feature in body["features"]:
        props = feature["properties"]
        starts, ends = datetime.fromisoformat(props["starts_at"]), datetime.fromisoformat(props["ends_at"])
        assert ends > at
        assert props["happening_now"] == (starts <= at)
        happening += props["happening_now"]
    assert happening > 5
    later = get(client, **DOWNTOWN, layers="events", limit=100, at="2026-07-22T18:00:00Z").json()
    ended = {
        f["id"] for f in body["features"] if datetime.fromisoformat(f["properties"]["ends_at"]) <= at.replace(day=22)
    }
    assert ended and not ended & {f["id"] for f in later["features"]}


def test_next_links_page_through_without_duplicates(client: TestClient) -> None:
    params = {**DOWNTOWN, "layers": "facilities,events", "radius": 3000, "at": DEMO_NOW}
    whole = get(client, **params, limit=100).json()
    assert "next" not in {link["rel"] for link in whole["links"]} and 15 < len(whole["features"]) < 100
    seen: list[tuple[str, Any]] = []
    url: str | None = client.get("/nearby", params={**params, "limit": 4}).request.url.__str__()
    while url:
        page = client.get(url).json()
        seen += [(f["properties"]["layer"], f["id"]) for f in page["features"]]
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
    assert seen == [(f["properties"]["layer"], f["id"]) for f in whole["features"]]
    assert len(set(seen)) == len(seen)


def test_a_cursor_only_works_for_its_own_search(client: TestClient) -> None:
    first = get(client, **DOWNTOWN, layers="facilities", limit=2).json()
    href = next(link["href"] for link in first["links"] if link["rel"] == "next")
    assert client.get(href).status_code == 200
    moved = client.get(href.replace("lon=-114.07", "lon=-114.08"))
    assert moved.status_code == 400 and moved.json()["parameter"] == "cursor"
    tampered = client.get(href[:-3] + ("AAA" if not href.endswith("AAA") else "BBB"))
    assert tampered.status_code == 400 and tampered.json()["parameter"] == "cursor"


BAD = [
    ({"lon": "nan", "lat": 51}, "lon"),
    ({"lon": "NaN", "lat": 51}, "lon"),
    ({"lon": "inf", "lat": 51}, "lon"),
    ({"lon": -114, "lat": "-Infinity"}, "lat"),
    ({"lon": -114, "lat": 91}, "lat"),
    ({"lon": 180.0001, "lat": 51}, "lon"),
    ({"lon": -114, "lat": "1e400"}, "lat"),
    ({"lon": "-114,51", "lat": 51}, "lon"),
    ({"lat": 51}, "lon"),
    ({"lon": -114, "lat": 51, "radius": 0}, "radius"),
    ({"lon": -114, "lat": 51, "radius": -5}, "radius"),
    ({"lon": -114, "lat": 51, "radius": 50_000.5}, "radius"),
    ({"lon": -114, "lat": 51, "radius": "1e309"}, "radius"),
    ({"lon": -114, "lat": 51, "radius": "nan"}, "radius"),
    ({"lon": -114, "lat": 51, "limit": 0}, "limit"),
    ({"lon": -114, "lat": 51, "limit": 101}, "limit"),
    ({"lon": -114, "lat": 51, "limit": 10**12}, "limit"),
    ({"lon": -114, "lat": 51, "limit": 1.5}, "limit"),
    ({"lon": -114, "lat": 51, "layers": "no_such_layer"}, "layers"),
    ({"lon": -114, "lat": 51, "layers": ""}, "layers"),
    ({"lon": -114, "lat": 51, "layers": "facilities,,events"}, "layers"),
    ({"lon": -114, "lat": 51, "layers": "facilities,'; DROP TABLE geoserver.layers; --"}, "layers"),
    ({"lon": -114, "lat": 51, "layers": ",".join(f"l{i}" for i in range(51))}, "layers"),
    ({"lon": -114, "lat": 51, "category": "casino"}, "category"),
    ({"lon": -114, "lat": 51, "category": "library' OR '1'='1"}, "category"),
    ({"lon": -114, "lat": 51, "layers": "wards", "category": "library"}, "category"),
    ({"lon": -114, "lat": 51, "layers": "events", "open_now": "true"}, "open_now"),
    ({"lon": -114, "lat": 51, "open_now": "maybe"}, "open_now"),
    ({"lon": -114, "lat": 51, "at": "2026-07-15"}, "at"),
    ({"lon": -114, "lat": 51, "at": "2026-07-15T18:00:00"}, "at"),
    ({"lon": -114, "lat": 51, "at": "2026-13-40T25:00:00Z"}, "at"),
    ({"lon": -114, "lat": 51, "at": "now'; SELECT pg_sleep(5); --"}, "at"),
    ({"lon": -114, "lat": 51, "cursor": "eyJ9.AAAA"}, "cursor"),
    ({"lon": -114, "lat": 51, "cursor": "x" * 2000}, "cursor"),
    ({"lon": -114, "lat": 51, "near": "-114,51"}, "near"),
    ({"lon": -114, "lat": 51, "bbox": "1,2,3,4"}, "bbox"),
    ([("lon", -114), ("lat", 51), ("lon", -113)], "lon"),  # repeated
]


@pytest.mark.parametrize(("params", "parameter"), BAD, ids=[f"{p}->{w}" for p, w in BAD])
def test_bad_input_is_a_400_naming_the_parameter(client: TestClient, params: Any, parameter: str) -> None:
    assert_invalid_parameter(client.get("/nearby", params=params), parameter)
    assert get(client, **DOWNTOWN).status_code == 200  # and the server keeps serving


def test_a_group_layer_is_refused_like_an_unknown_one_except_for_members(
    client: TestClient, group_layer: str, database_url: str
) -> None:
    hidden = get(client, **DOWNTOWN, layers=group_layer)
    unknown = get(client, **DOWNTOWN, layers="no layer at all")
    assert hidden.status_code == unknown.status_code == 400
    assert hidden.json()["description"].replace(group_layer, "X") == unknown.json()["description"].replace(
        "no layer at all", "X"
    )
    anonymous = get(client, **DOWNTOWN, limit=100).json()
    assert group_layer not in {f["properties"]["layer"] for f in anonymous["features"]}
    token = issue(database_url, "nearby-member", {"nearby-api-testers": "viewer"})
    member = get(client, **DOWNTOWN, layers=group_layer, headers={"Authorization": f"Bearer {token}"})
    assert member.status_code == 200 and member.json()["features"][0]["properties"]["name"] == "members only"


def test_here_names_the_ward_the_community_and_the_serving_facilities(client: TestClient) -> None:
    response = get(client, "/here", **DOWNTOWN)
    assert response.status_code == 200 and response.headers["content-type"] == "application/geo+json"
    body = response.json()
    by_layer = {f["properties"]["layer"]: f for f in body["features"]}
    assert {"wards", "communities"} <= set(by_layer)
    assert by_layer["wards"]["properties"]["name"].startswith("Ward ")
    assert by_layer["wards"]["geometry"]["type"] == "Polygon" and "councillor" in by_layer["wards"]["properties"]
    assert "office_phone_internal" not in by_layer["wards"]["properties"]
    assert set(body["serving"]) == {"fire_station", "library", "recreation_centre"}
    for category, feature in body["serving"].items():
        assert feature["properties"]["category"] == category and feature["properties"]["distance_m"] > 0
    assert "nearest" in body["service_area"] and "geodesic" in body["service_area"]
    outside = get(client, "/here", lon=-100.0, lat=45.0).json()
    assert outside["features"] == [] and outside["serving"]["fire_station"]["properties"]["distance_m"] > 500_000


@pytest.mark.parametrize(
    ("params", "parameter"),
    [({"lon": -114}, "lat"), ({"lon": -114, "lat": 51, "radius": 5}, "radius"), ({"lon": "nan", "lat": 51}, "lon")],
)
def test_here_refuses_bad_input(client: TestClient, params: dict[str, Any], parameter: str) -> None:
    response = get(client, "/here", **params)
    assert response.status_code == 400 and response.json()["parameter"] == parameter


def test_the_openapi_document_declares_every_parameter_with_its_limits(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    declared = {p["name"]: p for p in paths["/nearby"]["get"]["parameters"]}
    assert set(declared) == {"lon", "lat", "radius", "layers", "category", "open_now", "at", "limit", "cursor"}
    assert all(p["in"] == "query" and p.get("description") for p in declared.values())

    def schema(name: str) -> dict[str, Any]:
        found = declared[name]["schema"]
        return next((s for s in found.get("anyOf", [found]) if s.get("type") != "null"), found)

    assert schema("limit")["maximum"] == 100 and schema("limit")["minimum"] == 1
    radius = schema("radius")
    assert radius["maximum"] == 50_000
    assert radius["minimum"] == 0.01  # a centimetre: smaller radii underflow the distance arithmetic
    assert (schema("lon")["minimum"], schema("lon")["maximum"]) == (-180, 180)
    assert (schema("lat")["minimum"], schema("lat")["maximum"]) == (-90, 90)
    assert declared["lon"]["required"] and declared["lat"]["required"]
    assert {p["name"] for p in paths["/here"]["get"]["parameters"]} == {"lon", "lat"}
    assert "400" in paths["/nearby"]["get"]["responses"]


def test_the_cursor_key_is_shared_by_every_worker_of_a_data_directory(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "nearby-cursor.key"
    first, second = key_file(path), key_file(path)
    assert first == second and len(first) == 32 and path.stat().st_mode & 0o777 == 0o600
    (tmp_path / "a file").write_text("not a directory")
    unwritable = tmp_path / "a file" / "nearby-cursor.key"
    assert len(key_file(unwritable)) == 32 and key_file(unwritable) != key_file(unwritable)


def test_a_next_link_made_by_one_worker_works_on_another(client: TestClient, database_url: str) -> None:
    first = get(client, **DOWNTOWN, layers="facilities", limit=3).json()
    href = next(link["href"] for link in first["links"] if link["rel"] == "next")
    settings = client.app.state.geoserver.settings  # type: ignore[attr-defined]
    with TestClient(create_app(settings, database_url)) as other:
        until_ready(other)
        page = other.get(href)
    assert page.status_code == 200 and len(page.json()["features"]) == 3


def test_metrics_count_requests_not_places(client: TestClient) -> None:
    for _ in range(3):
        get(client, lon="-114.0712345", lat="51.0498765", layers="facilities")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "nearby" in metrics.text
    assert "0712345" not in metrics.text and "0498765" not in metrics.text


def test_a_shared_cursor_secret_works_across_data_directories(
    client: TestClient, database_url: str, tmp_path: Path
) -> None:
    """Machines behind one address share GEOSERVER_CURSOR_SECRET, not a data directory."""
    from pydantic import ValidationError

    from geoserver.settings import Settings

    secret = "x" * 8 + "a-long-random-value-shared-by-machines"
    apps = [
        create_app(
            Settings(data_dir=tmp_path / name, cursor_secret=SecretStr(secret), connect_timeout_s=2), database_url
        )
        for name in ("machine-a", "machine-b")
    ]
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        for app_client in (a, b):
            until_ready(app_client)
        first = get(a, **DOWNTOWN, layers="facilities", limit=3).json()
        href = next(link["href"] for link in first["links"] if link["rel"] == "next")
        assert b.get(href).status_code == 200
        assert client.get(href).status_code == 400  # signed with another key: refused
    for placeholder in ("changeme", "short"):
        with pytest.raises(ValidationError):
            Settings(cursor_secret=SecretStr(placeholder))


def test_near_me_from_memory_shows_an_edit_in_the_writers_next_answer(client: TestClient, database_url: str) -> None:
    state = client.app.state.geoserver  # type: ignore[attr-defined]
    facilities = state.registry.resolve("facilities", Principal(subject="nearby-tests", is_staff=True))
    deadline = time.monotonic() + 10
    while not state.nearby.memory.is_current(facilities):  # a near-me request asks for the layer's points
        assert get(client, **DOWNTOWN, layers="facilities", limit=1).status_code == 200
        assert time.monotonic() < deadline, "the points of facilities were not read into memory"
        time.sleep(0.05)
    nearest = get(client, **DOWNTOWN, layers="facilities", limit=1).json()["features"][0]
    staff = {"Authorization": f"Bearer {issue(database_url, 'gis@nearby-memory', staff=True)}"}
    name = f"renamed {time.monotonic_ns()}"
    edited = client.patch(
        f"/collections/facilities/items/{nearest['id']}",
        json={"properties": {"name": name}},
        headers={**staff, "Content-Type": "application/merge-patch+json"},
    )
    assert edited.status_code == 200, edited.text
    try:
        again = get(client, **DOWNTOWN, layers="facilities", limit=1).json()["features"][0]
        assert (again["id"], again["properties"]["name"]) == (nearest["id"], name)
    finally:
        restored = client.post(f"/collections/facilities/items/{nearest['id']}/versions/1/restore", headers=staff)
        assert restored.status_code == 200, restored.text
