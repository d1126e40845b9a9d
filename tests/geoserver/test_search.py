"""`/search` over HTTP: words of names and addresses, nearest first with a point, spelling, public only, bad input."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from layers.catalogue.visibility import Principal
from layers.ingest.load import load_file
from tests.support.access import issue
from tests.support.errors import assert_invalid_parameter
from tests.support.layers import drop_layer, manifest, one_row, point, write_geojson

DOWNTOWN: dict[str, Any] = {"lon": -114.07, "lat": 51.05}
GROUP_LAYER = "search members' overlay"
SECRET_NAME = "Quillfeather Library"  # a name only the group layer holds


def search(client: TestClient, headers: dict[str, str] | None = None, **params: Any) -> Any:
    """GET /search with query parameters; returns the response."""
    return client.get("/search", params=params, headers=headers)


def texts(feature: dict[str, Any]) -> str:
    """The searchable text of a demo feature, lower-cased."""
    props = feature["properties"]
    return " ".join(str(props.get(k) or "") for k in ("name", "address", "title", "venue")).lower()


@pytest.fixture(scope="module")
def group_layer(client: TestClient, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A searchable layer only the 'search-testers' group sees, once the running app has picked it up."""
    path = write_geojson(tmp_path_factory.mktemp("s") / "s.geojson", [({"name": SECRET_NAME}, point(-114.07, 51.05))])
    extra = {"visibility": "group:search-testers", "searchable_fields": ["name"], "serves_people": True}
    load_file(database_url, manifest(GROUP_LAYER, ["name"], **extra), path)
    state = client.app.state.geoserver  # type: ignore[attr-defined]
    staff = Principal(subject="search-tests", is_staff=True)
    deadline = time.monotonic() + 10
    while GROUP_LAYER not in {layer.id for layer in state.registry.visible(staff)}:
        assert time.monotonic() < deadline, "the app did not pick up the group layer"
        time.sleep(0.05)
    yield GROUP_LAYER
    drop_layer(database_url, GROUP_LAYER)


def test_every_word_of_the_query_is_in_each_result(client: TestClient) -> None:
    response = search(client, q="community HALL", limit=50)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/geo+json"
    assert response.headers["cache-control"] == "public, max-age=60, s-maxage=60"
    body = response.json()
    assert body["type"] == "FeatureCollection" and body["numberReturned"] == len(body["features"]) > 8
    titles = {"facilities": "Facilities (demo data)", "events": "Events (demo data)"}
    for feature in body["features"]:
        assert "community" in texts(feature) and "hall" in texts(feature)
        props = feature["properties"]
        assert props["layer_title"] == titles[props["layer"]]
        assert "distance_m" not in props and "staff_notes" not in props
        west, south, east, north = feature["bbox"]
        assert west <= feature["geometry"]["coordinates"][0] <= east and south <= north
    halls = [f for f in body["features"] if f["properties"].get("category") == "community_hall"]
    assert len(halls) == 8  # every hall of the demo City (venues named "... Community Hall" make up the rest)
    # The best first: names that start with the query, then shorter names.
    ward = search(client, q="ward 1").json()["features"]
    assert [f["properties"]["name"] for f in ward[:4]] == ["Ward 1", "Ward 10", "Ward 11", "Ward 12"]


def test_a_point_puts_the_nearest_first(client: TestClient) -> None:
    response = search(client, q="library", limit=50, **DOWNTOWN)
    assert response.headers["cache-control"] == "private, no-store"  # a point is personal
    features = response.json()["features"]
    distances = [f["properties"]["distance_m"] for f in features]
    assert len(features) >= 5 and distances == sorted(distances)
    lon, lat = DOWNTOWN["lon"], DOWNTOWN["lat"]
    nearest = one_row(
        client.app.state.geoserver.database_url,  # type: ignore[attr-defined]
        "SELECT facility_id FROM layer_data.facilities WHERE name ILIKE %s "
        "ORDER BY ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography) LIMIT 1",
        ("%library%", lon, lat),
    )[0]
    assert features[0]["id"] == nearest


def test_an_address_a_venue_and_a_place_name_are_found(client: TestClient, database_url: str) -> None:
    facility, address = one_row(database_url, "SELECT facility_id, address FROM layer_data.facilities LIMIT 1")
    found = search(client, q=" ".join(address.split()[:3]), limit=50).json()["features"]
    assert facility in [f["id"] for f in found if f["properties"]["layer"] == "facilities"]
    arena = "SELECT event_id, venue FROM layer_data.events WHERE venue LIKE %s"
    event, venue = one_row(database_url, arena, ("%Arena",))
    found = search(client, q=venue, limit=50).json()["features"]
    assert event in [f["id"] for f in found if f["properties"]["layer"] == "events"]
    (community,) = one_row(database_url, "SELECT name FROM layer_data.communities LIMIT 1")
    first = search(client, q=community.upper()).json()["features"][0]
    assert first["properties"]["layer"] == "communities" and first["properties"]["name"] == community
    assert first["geometry"]["type"] in ("Polygon", "MultiPolygon")


def test_a_spelling_mistake_still_finds_what_was_meant(client: TestClient) -> None:
    exact = search(client, q="libary").json()["features"]
    assert exact and all("library" in texts(f) for f in exact)
    assert search(client, q="zqxjv wvvq").json()["features"] == []


def test_wildcards_are_taken_literally(client: TestClient) -> None:
    for q in ("%%", "__", "\\\\", "%_", "' OR 1=1 --"):
        response = search(client, q=q)
        assert response.status_code == 200 and response.json()["features"] == [], q


def test_layer_titles_follow_the_language_and_fall_back_to_english(client: TestClient) -> None:
    titles = {}
    for lang in ("fr", "pa", "zh-Hans", "en"):
        response = search(client, q="library", limit=1, lang=lang)
        assert response.headers["content-language"] == lang
        titles[lang] = response.json()["features"][0]["properties"]["layer_title"]
    assert titles["fr"] == "Installations (données de démonstration)"
    assert titles["pa"] == titles["zh-Hans"] == titles["en"] == "Facilities (demo data)"
    chinese = search(client, q="library", limit=1, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert chinese.headers["content-language"] == "zh-Hans"


def test_only_public_layers_are_searched_whoever_asks(client: TestClient, group_layer: str, database_url: str) -> None:
    token = issue(database_url, "search-member", {"search-testers": "viewer"})
    for headers in (None, {"Authorization": f"Bearer {token}"}):
        response = search(client, q=SECRET_NAME, headers=headers)
        assert response.status_code == 200 and response.json()["features"] == []
    member = {"Authorization": f"Bearer {token}"}
    named = client.get("/nearby", params={**DOWNTOWN, "layers": group_layer}, headers=member)
    assert named.json()["features"][0]["properties"]["name"] == SECRET_NAME  # the control: the member sees it


BAD = [
    ({}, "q"),
    ({"q": ""}, "q"),
    ({"q": "  a  "}, "q"),
    ({"q": "x" * 101}, "q"),
    ({"q": " ".join(f"w{i}" for i in range(9))}, "q"),
    ({"q": "library\x00"}, "q"),
    ({"q": "library", "lon": -114}, "lat"),
    ({"q": "library", "lat": 51}, "lon"),
    ({"q": "library", "lon": "nan", "lat": 51}, "lon"),
    ({"q": "library", "lon": -114, "lat": 91}, "lat"),
    ({"q": "library", "limit": 0}, "limit"),
    ({"q": "library", "limit": 51}, "limit"),
    ({"q": "library", "limit": "ten"}, "limit"),
    ({"q": "library", "lang": "de"}, "lang"),
    ({"q": "library", "lang": "zh-TW"}, "lang"),
    ({"q": "library", "radius": 500}, "radius"),
    ([("q", "library"), ("q", "park")], "q"),  # repeated
]


@pytest.mark.parametrize(("params", "parameter"), BAD, ids=[f"{p}->{w}" for p, w in BAD])
def test_bad_input_is_a_400_naming_the_parameter(client: TestClient, params: Any, parameter: str) -> None:
    assert_invalid_parameter(client.get("/search", params=params), parameter)


def test_the_api_document_declares_search(client: TestClient) -> None:
    operation = client.get("/api").json()["paths"]["/search"]["get"]
    declared = {p["name"]: p for p in operation["parameters"]}
    assert set(declared) == {"q", "lon", "lat", "limit", "lang"} and declared["q"]["required"] is True
    assert declared["limit"]["schema"]["maximum"] == 50
    assert declared["lang"]["schema"]["enum"] == ["en", "fr", "pa", "zh-Hans"]
    assert "400" in operation["responses"]
