"""Tiles over HTTP: encoding, ETags, CORS, privacy headers, visibility, bad coordinates."""

from __future__ import annotations

import mapbox_vector_tile
import morecantile
import pytest
from fastapi.testclient import TestClient

from layers.catalogue.visibility import ANONYMOUS
from layers.ingest.load import load_file
from tests.support.access import issue
from tests.support.layers import manifest, point, write_geojson

DOWNTOWN = (-114.0719, 51.0447)
PRIVATE_NAMES = (
    "office_phone_internal",
    "staff_notes",
    "condition_score_internal",
    "assessed_value",
    "organizer_email",
    "requester_contact",
)


def _xyz(z: int, lon: float = DOWNTOWN[0], lat: float = DOWNTOWN[1]) -> str:
    t = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, z)
    return f"{z}/{t.x}/{t.y}"


def test_a_composite_tile_has_one_layer_per_catalogue_layer(client: TestClient, demo_city: dict[str, str]) -> None:
    names = ",".join(demo_city)
    response = client.get(f"/tiles/{names}/{_xyz(14)}.pbf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    decoded = mapbox_vector_tile.decode(response.content)
    present = set(decoded)
    assert {"wards", "communities", "roads"} <= present <= set(demo_city)
    for layer in decoded.values():
        for feature in layer["features"]:
            assert not set(feature["properties"]) & set(PRIVATE_NAMES)


def test_gzip_only_when_accepted_and_etag_revalidation(client: TestClient) -> None:
    path = f"/tiles/roads,wards/{_xyz(13)}.pbf"
    zipped = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    plain = client.get(path, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert zipped.content == plain.content  # httpx un-gzips: the same tile either way
    assert zipped.headers["etag"] != plain.headers["etag"]  # one strong ETag per representation
    assert "Accept-Encoding" in plain.headers["vary"]
    again = client.get(path, headers={"Accept-Encoding": "identity", "If-None-Match": plain.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    changed = client.get(path, headers={"Accept-Encoding": "identity", "If-None-Match": '"something-else"'})
    assert changed.status_code == 200


def test_cache_miss_then_hit_and_public_cache_headers(client: TestClient) -> None:
    z, x, y = _xyz(12).split("/")
    path = f"/collections/communities/tiles/WebMercatorQuad/{z}/{y}/{x}"  # OGC order: zoom/row/column
    first = client.get(path)
    second = client.get(path)
    assert first.status_code == 200
    assert (first.headers["x-tile-cache"], second.headers["x-tile-cache"]) in {("miss", "hit"), ("hit", "hit")}
    assert second.headers["cache-control"].startswith("public")
    assert first.content == second.content


@pytest.mark.parametrize(
    "path",
    [
        "/tiles/wards/-1/0/0.pbf",
        "/tiles/wards/1/2/0.pbf",
        "/tiles/wards/1/0/2.pbf",
        "/tiles/wards/25/0/0.pbf",
        "/tiles/wards/1.5/0/0.pbf",
        "/tiles/wards/99999999999999999999/0/0.pbf",
        "/tiles/wards/1/0/0.png",
        "/tiles/wards,/1/0/0.pbf",
        "/collections/wards/tiles/WebMercatorQuad/3/8/0",
        "/collections/wards/tiles/WebMercatorQuad/x/0/0",
    ],
)
def test_bad_tile_coordinates_are_400_with_cors(client: TestClient, path: str) -> None:
    response = client.get(path, headers={"Origin": "https://example.org"})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_parameter"
    assert response.headers["access-control-allow-origin"] == "*"


def test_unknown_layers_and_grids_are_404_with_cors(client: TestClient) -> None:
    for path in ("/tiles/nope/1/0/0.pbf", "/collections/wards/tiles/NoSuchQuad/1/0/0", "/tiles/nope.json"):
        response = client.get(path, headers={"Origin": "https://example.org"})
        assert response.status_code == 404
        assert response.headers["access-control-allow-origin"] == "*"


def test_repeated_layers_are_deduplicated_and_the_count_is_capped(client: TestClient) -> None:
    once = client.get(f"/tiles/roads/{_xyz(14)}.pbf")
    repeated = client.get(f"/tiles/roads,roads,roads/{_xyz(14)}.pbf")
    assert list(mapbox_vector_tile.decode(repeated.content)) == ["roads"]
    assert repeated.content == once.content
    too_many = client.get("/tiles/" + ",".join(f"l{i}" for i in range(40)) + "/1/0/0.pbf")
    assert too_many.status_code == 400 and too_many.json()["parameter"] == "layers"


def test_empty_tiles_are_204(client: TestClient) -> None:
    response = client.get("/tiles/wards/10/0/0.pbf", headers={"Origin": "https://example.org"})
    assert response.status_code == 204 and response.content == b""
    assert response.headers["access-control-allow-origin"] == "*"


def test_tilejson_and_style_describe_public_fields_only(client: TestClient, demo_city: dict[str, str]) -> None:
    doc = client.get("/tiles/facilities,service_requests.json").json()
    assert doc["tilejson"] == "3.0.0" and doc["tiles"][0].startswith("http")
    fields = {layer["id"]: layer["fields"] for layer in doc["vector_layers"]}
    assert "opening_hours" in fields["facilities"] and "staff_notes" not in fields["facilities"]
    assert "requester_contact" not in fields["service_requests"]
    for lang in ("en", "fr"):
        style = client.get(f"/styles/city-{lang}.json").json()
        assert style["version"] == 8 and style["metadata"]["geoserver:language"] == lang
        drawn = {layer["source-layer"] for layer in style["layers"] if "source-layer" in layer}
        public = {layer.id for layer in client.app.state.geoserver.registry.visible(ANONYMOUS)}  # type: ignore[attr-defined]
        assert set(demo_city) <= drawn == public
    assert client.get("/styles/city.json", headers={"Accept-Language": "fr-CA"}).json()["name"].startswith("Ville")


@pytest.fixture(scope="module")
def group_overlay(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A community group's overlay and a member's token."""
    path = write_geojson(
        tmp_path_factory.mktemp("overlay") / "o.geojson", [({"name": "secret picnic"}, point(*DOWNTOWN))]
    )
    load_file(database_url, manifest("picnic overlay", ["name"], visibility="group:picnickers"), path)
    return issue(database_url, "pat@picnickers", {"picnickers": "viewer"})


def test_a_group_layer_is_invisible_to_others_and_private_to_members(
    client: TestClient, group_overlay: str, demo_city: dict[str, str]
) -> None:
    import time

    deadline = time.monotonic() + 10
    member = {"Authorization": f"Bearer {group_overlay}"}
    while client.get("/tiles/picnic%20overlay.json", headers=member).status_code != 200:
        assert time.monotonic() < deadline, "the app never saw the overlay"
        time.sleep(0.05)
    path = f"/tiles/picnic%20overlay/{_xyz(15)}.pbf"
    hidden = client.get(path)
    missing = client.get(f"/tiles/no%20such%20overlay/{_xyz(15)}.pbf")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["description"].replace("picnic overlay", "X") == missing.json()["description"].replace(
        "no such overlay", "X"
    )
    anonymous_style = client.get("/styles/city-en.json").json()
    assert "picnic overlay" not in repr(anonymous_style)
    seen = client.get(path, headers=member)
    assert seen.status_code == 200
    assert seen.headers["cache-control"] == "private, no-store"
    assert "Authorization" in seen.headers["vary"]
    assert seen.headers["x-tile-cache"] == "miss" and client.get(path, headers=member).headers["x-tile-cache"] == "miss"
    mixed = client.get(f"/tiles/wards,picnic%20overlay/{_xyz(15)}.pbf", headers=member)
    assert mixed.headers["cache-control"] == "private, no-store"
    assert client.get(path, headers={"Authorization": "Bearer gs_forged"}).status_code == 401
