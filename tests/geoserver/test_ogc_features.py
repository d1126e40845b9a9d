"""OGC API Features over HTTP: landing, conformance, OpenAPI 3.0, collections, items, errors, visibility, HTML."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from layers.catalogue.visibility import Principal
from layers.ingest.load import load_file
from layers.limits import MAX_LIMIT
from tests.support.access import issue
from tests.support.errors import assert_invalid_parameter
from tests.support.layers import drop_layer, manifest, point, write_geojson

GROUP_LAYER = "friends' garden plots"
GROUP = "friends"
OAS30 = "application/vnd.oai.openapi+json;version=3.0"
STAFF = Principal(subject="test staff", is_staff=True)


@pytest.fixture(scope="module")
def group_layer(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A layer only members of one group may see."""
    path = write_geojson(
        tmp_path_factory.mktemp("group") / "plots.geojson",
        [({"plot": f"P{i}", "crop": "kale"}, point(-113.5, 53.5 + i / 1000)) for i in range(5)],
    )
    load_file(database_url, manifest(GROUP_LAYER, ["plot", "crop"], id_field="plot", visibility=f"group:{GROUP}"), path)
    yield GROUP_LAYER
    drop_layer(database_url, GROUP_LAYER)


@pytest.fixture(scope="module")
def tokens(database_url: str, group_layer: str) -> dict[str, str]:
    return {
        "member": issue(database_url, "gardener", {GROUP: "viewer"}),
        "outsider": issue(database_url, "neighbour", {"other group": "viewer"}),
    }


@pytest.fixture(scope="module")
def app_client(client: TestClient, group_layer: str) -> TestClient:
    """The shared client, once the running app has picked up the group layer."""
    state = client.app.state.geoserver  # type: ignore[attr-defined]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and GROUP_LAYER not in {x.id for x in state.registry.visible(STAFF)}:
        time.sleep(0.05)
    return client


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _rels(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {link["rel"]: link for link in doc["links"]}


# -- landing, conformance, OpenAPI ------------------------------------------------------------------------
def test_landing_page_links(app_client: TestClient) -> None:
    response = app_client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    rels = _rels(response.json())
    assert rels["service-desc"]["type"] == OAS30 and rels["service-desc"]["href"].endswith("/api")
    assert rels["service-doc"]["type"] == "text/html"
    for rel in ("self", "alternate", "conformance", "data", "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes"):
        assert rel in rels and rels[rel].get("type"), rel
    assert rels["http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes"]["href"].endswith("/tileMatrixSets")


def test_conformance_declares_features_crs_and_filtering(app_client: TestClient) -> None:
    classes = set(app_client.get("/conformance").json()["conformsTo"])
    base = "http://www.opengis.net/spec/ogcapi-features-"
    for needed in ("1/1.0/conf/core", "1/1.0/conf/geojson", "1/1.0/conf/html", "1/1.0/conf/oas30", "2/1.0/conf/crs",
                   "3/1.0/conf/queryables", "3/1.0/conf/filter", "3/1.0/conf/features-filter"):  # fmt: skip
        assert base + needed in classes
    assert "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text" in classes


@pytest.mark.parametrize("path", ["/api", "/openapi.json"])
def test_the_api_document_is_valid_openapi_30(app_client: TestClient, path: str) -> None:
    response = app_client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == OAS30
    doc = response.json()
    assert doc["openapi"].startswith("3.0")
    validate(doc)  # raises on anything OpenAPI 3.0 does not allow
    text = response.text
    assert '"type":"null"' not in text and '"examples":[' not in text
    limit = doc["components"]["parameters"]["limit"]["schema"]
    assert limit["maximum"] == MAX_LIMIT and limit["default"] == 10
    items = doc["paths"]["/collections/{collectionId}/items"]["get"]["parameters"]
    declared = {ref["$ref"].rsplit("/", 1)[-1] for ref in items}
    assert {"limit", "offset", "bbox", "datetime", "filter", "sortby", "near", "radius", "crs", "bbox-crs"} <= declared
    assert "/collections/service_requests/items" in doc["paths"]
    assert not any(GROUP_LAYER in p for p in doc["paths"])


def test_layer_ids_never_read_as_path_templates(app_client: TestClient, database_url: str, tmp_path: Path) -> None:
    odd = "{brace} layer"
    path = write_geojson(tmp_path / "b.geojson", [({"v": 1}, point(-113.5, 53.5))])
    load_file(database_url, manifest(odd, ["v"]), path)
    state = app_client.app.state.geoserver  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and odd not in {x.id for x in state.registry.visible(STAFF)}:
        time.sleep(0.05)
    doc = app_client.get("/api").json()
    drop_layer(database_url, odd)
    validate(doc)
    assert "/collections/%7Bbrace%7D%20layer/items" in doc["paths"]


def test_docs_page_is_served(app_client: TestClient) -> None:
    assert app_client.get("/docs").status_code == 200


# -- collections --------------------------------------------------------------------------------------------
def test_collections_describe_every_public_layer(app_client: TestClient, demo_city: dict[str, str]) -> None:
    doc = app_client.get("/collections").json()
    by_id = {c["id"]: c for c in doc["collections"]}
    assert set(demo_city) <= set(by_id) and GROUP_LAYER not in by_id
    for layer_id in demo_city:
        c = by_id[layer_id]
        assert c["itemType"] == "feature" and c["title"] and c["description"]
        (bbox,) = c["extent"]["spatial"]["bbox"]
        assert len(bbox) == 4 and -114.5 < bbox[0] < bbox[2] < -113.5 and 50.5 < bbox[1] < bbox[3] < 51.5
        rels = {link["rel"]: link for link in c["links"]}
        items = [link for link in c["links"] if link["rel"] == "items"]
        assert items[0]["type"] == "application/geo+json"  # clients that take the first items link get GeoJSON
        assert "http://www.opengis.net/def/rel/ogc/1.0/queryables" in rels
        assert rels["http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"]["href"].endswith(
            f"/collections/{layer_id}/tiles"
        )
        assert rels["license"]["href"].startswith("https://")
        assert "http://www.opengis.net/def/crs/EPSG/0/3776" in c["crs"]
        assert c["storageCrs"] == "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    assert by_id["events"]["extent"]["temporal"]["interval"][0][0].startswith("20")
    one = app_client.get("/collections/events")
    assert one.json()["id"] == "events" and one.headers["cache-control"].startswith("public")


def test_queryables_are_the_public_fields(app_client: TestClient) -> None:
    response = app_client.get("/collections/events/queryables")
    assert response.headers["content-type"] == "application/schema+json"
    doc = response.json()
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(doc["properties"]) == {"geometry", "event_id", "title", "category", "venue", "starts_at", "ends_at"}
    assert doc["properties"]["starts_at"]["format"] == "date-time"
    assert doc["properties"]["event_id"]["type"] == "integer"


# -- items --------------------------------------------------------------------------------------------------
def test_next_links_walk_a_collection_exactly_once(app_client: TestClient, database_url: str) -> None:
    url: str | None = "/collections/communities/items?limit=17"
    seen: list[Any] = []
    pages = 0
    while url:
        response = app_client.get(url)
        assert response.status_code == 200 and response.headers["content-type"] == "application/geo+json"
        doc = response.json()
        assert doc["numberReturned"] == len(doc["features"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["timeStamp"])
        seen += [f["id"] for f in doc["features"]]
        rels = {(link["rel"], link["type"]) for link in doc["links"]}
        assert ("self", "application/geo+json") in rels and ("alternate", "text/html") in rels
        following = [link for link in doc["links"] if link["rel"] == "next" and link["type"] == "application/geo+json"]
        url = following[0]["href"] if following else None
        pages += 1
    with psycopg.connect(database_url) as conn:
        expected = [r[0] for r in conn.execute("SELECT community_code FROM layer_data.communities ORDER BY 1")]
    assert seen == expected and pages == -(-len(expected) // 17)
    assert doc["numberMatched"] == len(expected)


def test_items_headers(app_client: TestClient) -> None:
    response = app_client.get("/collections/wards/items?crs=http://www.opengis.net/def/crs/EPSG/0/3857")
    assert response.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/3857>"
    assert response.headers["cache-control"].startswith("public")
    x, y = response.json()["features"][0]["geometry"]["coordinates"][0][0]
    assert -12_800_000 < x < -12_600_000 and 6_500_000 < y < 6_700_000
    assert app_client.get("/collections/wards/items").headers["content-crs"].endswith("/OGC/1.3/CRS84>")


def test_one_item(app_client: TestClient) -> None:
    response = app_client.get("/collections/service_requests/items/SR-00000042")
    assert response.status_code == 200
    doc = response.json()
    assert doc["id"] == "SR-00000042" and doc["type"] == "Feature"
    assert set(doc["properties"]) == {"request_id", "service_code", "status", "requested_at", "closed_at"}
    missing = app_client.get("/collections/service_requests/items/SR-99999999")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert app_client.get("/collections/facilities/items/1 OR 1=1").status_code == 404


def test_large_pages_stream_and_match_small_pages(app_client: TestClient) -> None:
    big = app_client.get("/collections/service_requests/items?limit=3000&offset=100").json()
    assert big["numberReturned"] == 3000 == len(big["features"]) and big["numberMatched"] == 5000
    small = app_client.get("/collections/service_requests/items?limit=1000&offset=2100").json()
    assert [f["id"] for f in big["features"][2000:]] == [f["id"] for f in small["features"]]
    assert any(link["rel"] == "next" for link in big["links"])


def test_near_radius_in_the_items_endpoint(app_client: TestClient) -> None:
    doc = app_client.get("/collections/facilities/items?near=-114.07,51.05&radius=2500&sortby=distance&limit=50").json()
    distances = [f["properties"]["distance_m"] for f in doc["features"]]
    assert distances and distances == sorted(distances) and max(distances) <= 2500
    assert doc["numberMatched"] == len(distances)


def test_cql2_json_filter_over_http(app_client: TestClient) -> None:
    category = {"op": "=", "args": [{"property": "category"}, "library"]}
    inside = {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": [-114.4, 50.8, -113.8, 51.3]}]}
    tree = {"op": "and", "args": [category, inside]}
    doc = app_client.get(
        "/collections/facilities/items", params={"filter": json.dumps(tree), "filter-lang": "cql2-json", "limit": 100}
    ).json()
    assert doc["features"] and {f["properties"]["category"] for f in doc["features"]} == {"library"}
    text = app_client.get("/collections/facilities/items", params={"filter": "category = 'library'", "limit": 100})
    assert text.json()["numberMatched"] == doc["numberMatched"]


BAD = [
    ("/collections/service_requests/items?bbox=1,2,3", "bbox"),
    ("/collections/service_requests/items?bbox=1,2,3,4,5", "bbox"),
    ("/collections/service_requests/items?bbox=1,2,3,4,5,6,7", "bbox"),
    ("/collections/service_requests/items?bbox=-114,52,-113,51", "bbox"),
    ("/collections/service_requests/items?bbox=0,160,1,161", "bbox"),
    ("/collections/service_requests/items?bbox=nan,51,-113,52", "bbox"),
    ("/collections/service_requests/items?bbox=-114,51,inf,52", "bbox"),
    ("/collections/service_requests/items?datetime=soon", "datetime"),
    ("/collections/service_requests/items?datetime=2026-02-01/2026-01-01", "datetime"),
    ("/collections/service_requests/items?limit=0", "limit"),
    ("/collections/service_requests/items?limit=many", "limit"),
    ("/collections/service_requests/items?offset=-3", "offset"),
    ("/collections/service_requests/items?offset=10000000000", "offset"),
    ("/collections/service_requests/items?bogus=1", "bogus"),
    ("/collections/service_requests/items?limit=1&limit=2", "limit"),
    ("/collections/service_requests/items?requester_contact=x", "requester_contact"),
    ("/collections/service_requests/items?sortby=requester_contact", "sortby"),
    ("/collections/service_requests/items?sortby=status;DROP TABLE x", "sortby"),
    ("/collections/service_requests/items?sortby=distance", "sortby"),
    ("/collections/service_requests/items?filter=requester_contact='x'", "filter"),
    ("/collections/service_requests/items?filter=status='open' AND", "filter"),
    ("/collections/service_requests/items?filter=status = 'x'; DROP TABLE layer_data.service_requests", "filter"),
    ("/collections/service_requests/items?filter-lang=sql&filter=1=1", "filter-lang"),
    ("/collections/wards/items?filter=name LIKE '\\'", "filter"),  # ends with the escape character
    ("/collections/wards/items?filter='a' LIKE name", "filter"),  # a column's values as the pattern
    ("/collections/wards/items?filter=CASEI(name) LIKE CASEI('x\\\\\\')", "filter"),
    (
        '/collections/wards/items?filter-lang=cql2-json&filter={"op":"like","args":[{"property":"name"},"\\\\"]}',
        "filter",
    ),
    ('/collections/service_requests/items?filter={"op":"drop"}&filter-lang=cql2-json', "filter"),
    ("/collections/service_requests/items?crs=EPSG:2263", "crs"),
    ("/collections/service_requests/items?bbox-crs=urn:x&bbox=1,2,3,4", "bbox-crs"),
    ("/collections/service_requests/items?f=xml", "f"),
    ("/collections/service_requests/items?lang=de", "lang"),
    ("/collections/service_requests/items?status=open%00", "status"),
    ("/collections/service_requests/items?near=nan,51&radius=10", "near"),
    ("/collections/service_requests/items?near=-114,95&radius=10", "near"),
    ("/collections/service_requests/items?near=-114,51&radius=-1", "radius"),
    ("/collections/service_requests/items?near=-114,51&radius=100000000", "radius"),
    ("/collections/service_requests/items?near=-114,51", "radius"),
    ("/collections/wards/items?datetime=2026-01-01T00:00:00Z", "datetime"),
    ("/collections/service_requests/items/SR-00000001?bbox=1,2,3,4", "bbox"),
    ("/collections/service_requests/queryables?x=1", "x"),
    ("/collections?limit=3", "limit"),
    ("/nearby?lon=-114.06&lat=51.04&radius=1_000", "radius"),  # float() would take these three
    ("/nearby?lon=-114.06&lat=\u0665\u0661&layers=facilities", "lat"),
    ("/collections/wards/items?bbox=-114.2,51,-114,51.1%20", "bbox"),
    ("/collections/wards/items?bbox=-114.2,51,5,-114,51.1,1", "bbox"),  # the lower corner above the upper
    ("/collections/service_requests/items?limit=%2010", "limit"),
    ("/collections/wards/items/1/versions?limit=99999999999999999999", "limit"),
    ("/collections/wards/items/1/versions/1?x=1", "x"),
    ("/collections/wards/items/1/versions?f=html", "f"),
    ("/collections/wards/changes?since=9999999999999999999", "since"),  # 19 digits, beyond a bigint
    ("/?q=1", "q"),
]


@pytest.mark.parametrize(("url", "parameter"), BAD)
def test_bad_input_is_a_400_naming_the_parameter(app_client: TestClient, url: str, parameter: str) -> None:
    assert_invalid_parameter(app_client.get(url), parameter)


@pytest.mark.parametrize(
    "collection",
    [
        "service_requests'; DROP TABLE layer_data.wards; --",
        'wards" OR "1"="1',
        "ward\u2019s",
        "wärds",
        "%00",
        "x" * 300,
    ],
)
def test_hostile_collection_ids_are_404(app_client: TestClient, database_url: str, collection: str) -> None:
    for suffix in ("", "/items", "/queryables", "/items/1", "/download.csv"):
        response = app_client.get(f"/collections/{quote(collection, safe='')}{suffix}")
        assert response.status_code == 404, (suffix, response.text)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM layer_data.wards").fetchone() == (14,)


# -- visibility ---------------------------------------------------------------------------------------------
MISSING = "nobody's garden plots"
GROUP_PATHS = ["", "/items", "/items/P1", "/queryables", "/download.geojson", "/download.csv", "/download.gpkg"]


@pytest.mark.parametrize("suffix", GROUP_PATHS)
def test_a_group_layer_is_404_like_a_missing_one(app_client: TestClient, tokens: dict[str, str], suffix: str) -> None:
    hidden = f"/collections/{quote(GROUP_LAYER, safe='')}{suffix}"
    missing = f"/collections/{quote(MISSING, safe='')}{suffix}"
    for headers in ({}, _auth(tokens["outsider"])):
        a, b = app_client.get(hidden, headers=headers), app_client.get(missing, headers=headers)
        assert a.status_code == b.status_code == 404
        assert a.json()["code"] == b.json()["code"]
        assert a.json()["description"].replace(GROUP_LAYER, "X") == b.json()["description"].replace(MISSING, "X")
    member = app_client.get(hidden, headers=_auth(tokens["member"]))
    assert member.status_code == 200
    assert member.headers["cache-control"] == "private, no-store"
    assert "Authorization" in member.headers["vary"]


def test_group_layers_are_listed_for_members_only(app_client: TestClient, tokens: dict[str, str]) -> None:
    anonymous = app_client.get("/collections")
    assert GROUP_LAYER not in {c["id"] for c in anonymous.json()["collections"]}
    assert anonymous.headers["cache-control"].startswith("public")
    member = app_client.get("/collections", headers=_auth(tokens["member"]))
    assert GROUP_LAYER in {c["id"] for c in member.json()["collections"]}
    assert member.headers["cache-control"] == "private, no-store" and "Authorization" in member.headers["vary"]
    items = app_client.get(f"/collections/{quote(GROUP_LAYER, safe='')}/items", headers=_auth(tokens["member"]))
    assert items.json()["numberMatched"] == 5
    assert GROUP_LAYER not in app_client.get("/catalog").text
    assert GROUP_LAYER not in app_client.get("/api").text
