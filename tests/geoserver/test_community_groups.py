"""A community group's whole journey, as a volunteer would make it: the command line, then HTTP with curl-like calls.

City staff create the group and a publisher token on the command line; the publisher issues an editor token over
HTTP; the editor uploads a KML of events and a zipped Shapefile of garden plots; nobody else sees them until the
publisher makes the events public; then everyone does, everywhere; another group never sees the plots; a revoked
token stops working.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import mapbox_vector_tile
import morecantile
import pytest
from fastapi.testclient import TestClient

from tests.support.access import issue
from tests.support.cli import geoserver
from tests.support.files import garden_plots, kml_events, zipped_shapefile
from tests.support.layers import drop_layer

GROUP = "bowness-gardeners"
EVENTS = "bowness garden events"
PLOTS = "bowness garden plots"
FESTIVAL: dict[str, Any] = {"lon": -114.0712, "lat": 51.0455}
AT_EVENT = "2026-07-15T18:00:00Z"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tile_of(lon: float, lat: float, z: int = 14) -> str:
    t = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, z)
    return f"{z}/{t.x}/{t.y}"


def wait_until_visible(client: TestClient, layer: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 15
    while client.get(f"/collections/{quote(layer, safe='')}", headers=headers).status_code != 200:
        assert time.monotonic() < deadline, f"{layer} never became visible"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def journey(
    client: TestClient, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Everything up to the two uploads; the tests look at the outcome from every side."""
    tmp = tmp_path_factory.mktemp("gardeners")
    geoserver(
        database_url, "groups", "create", GROUP, "--name", "Bowness Gardeners", "--contact", "chair@example.invalid"
    )
    out = geoserver(
        database_url, "tokens", "create", "chair@bowness", "--group", f"{GROUP}:publisher", "--label", "chair"
    ).stdout
    publisher = out.strip().splitlines()[-1]
    assert publisher.startswith("gs_") and len(publisher) > 30
    issued = client.post(f"/groups/{GROUP}/tokens", json={"subject": "sam@bowness", "role": "editor", "label": "sam"},
                         headers=bearer(publisher))  # fmt: skip
    assert issued.status_code == 201, issued.text
    editor = issued.json()["token"]
    events = kml_events(tmp / "festival.kml", [
        {"name": "Street festival", "starts": "2026-07-15T17:00:00Z", "ends": "2026-07-15T21:00:00Z", **FESTIVAL},
        {"name": "Seed swap", "starts": "2026-07-20T16:00:00Z", "ends": "2026-07-20T18:00:00Z",
         "lon": -114.0705, "lat": 51.0452},
    ])  # fmt: skip
    with open(events, "rb") as handle:
        created = client.post(
            "/collections",
            files={"file": ("festival.kml", handle, "application/vnd.google-earth.kml+xml")},
            data={"id": EVENTS, "title": "Bowness garden events", "group": GROUP, "category": "events",
                  "time_start": "starts", "time_end": "ends"},
            headers=bearer(editor),
        )  # fmt: skip
    assert created.status_code == 201, created.text
    plots = zipped_shapefile(tmp / "plots.zip", garden_plots())
    with open(plots, "rb") as handle:
        made = client.post(
            "/collections",
            files={"file": ("plots.zip", handle, "application/zip")},
            data={"id": PLOTS, "title": "Garden plots", "group": GROUP, "private_fields": "holder", "id_field": "plot"},
            headers=bearer(editor),
        )
    assert made.status_code == 201, made.text
    outsider = issue(database_url, "pat@elsewhere", {"other-gardeners": "publisher"})
    yield {"publisher": publisher, "editor": editor, "outsider": outsider, "created": created, "plots": made}
    for layer in (EVENTS, PLOTS):  # later modules expect the demo City's public layers only (near me without layers)
        drop_layer(database_url, layer)


def test_uploads_answer_201_with_the_layer_document(journey: dict[str, Any]) -> None:
    created = journey["created"]
    assert created.headers["location"].endswith(f"/collections/{quote(EVENTS, safe='')}")
    doc = created.json()
    assert doc["id"] == EVENTS and doc["community"] is True and doc["publisher"] == "Bowness Gardeners"
    assert doc["visibility"] == f"group:{GROUP}" and doc["ingest"]["features"] == 2
    plots = journey["plots"].json()
    assert plots["ingest"]["features"] == 6 and plots["geometryType"] == "Polygon"
    assert plots["extent"]["spatial"]["bbox"][0][0] == pytest.approx(-114.07, abs=1e-3)  # reprojected from 3TM


@pytest.mark.parametrize("layer", [EVENTS, PLOTS])
def test_nobody_outside_the_group_sees_a_new_overlay(client: TestClient, journey: dict[str, Any], layer: str) -> None:
    for headers in ({}, bearer(journey["outsider"])):
        c = f"/collections/{quote(layer, safe='')}"
        for path in (c, f"{c}/items", f"{c}/queryables", f"{c}/download.geojson", f"{c}/tiles",
                     f"{c}/tiles/WebMercatorQuad/{tile_of(**FESTIVAL)}", f"/tiles/{quote(layer, safe='')}.json",
                     f"/tiles/wards,{quote(layer, safe='')}/{tile_of(**FESTIVAL)}.pbf"):  # fmt: skip
            assert client.get(path, headers=headers).status_code == 404, (path, headers)
        assert client.get(f"/nearby?lon=-114.07&lat=51.045&layers={quote(layer)}", headers=headers).status_code == 400
        listed = client.get("/collections", headers=headers).json()["collections"]
        assert layer not in {c["id"] for c in listed}
        nearby = client.get(f"/nearby?lon={FESTIVAL['lon']}&lat={FESTIVAL['lat']}&limit=100", headers=headers).json()
        assert layer not in {f["properties"]["layer"] for f in nearby["features"]}
        assert layer not in client.get("/styles/city-en.json", headers=headers).text
    assert layer not in client.get("/catalog").text


def test_the_group_sees_its_overlays_and_private_fields_stay_private(
    client: TestClient, journey: dict[str, Any]
) -> None:
    items = client.get(f"/collections/{quote(PLOTS, safe='')}/items", headers=bearer(journey["editor"]))
    assert items.status_code == 200 and items.headers["cache-control"] == "private, no-store"
    features = items.json()["features"]
    assert {f["id"] for f in features} == {f"P{i}" for i in range(1, 7)}
    assert all(set(f["properties"]) == {"plot", "crop"} for f in features)  # `holder` is private
    assert "holder" not in client.get(f"/collections/{quote(PLOTS, safe='')}/queryables",
                                      headers=bearer(journey["editor"])).text  # fmt: skip


def test_an_editor_cannot_make_a_layer_public_and_a_viewer_cannot_upload(
    client: TestClient, journey: dict[str, Any], database_url: str
) -> None:
    refused = client.patch(f"/collections/{quote(PLOTS, safe='')}", json={"visibility": "public"},
                           headers=bearer(journey["editor"]))  # fmt: skip
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    viewer = issue(database_url, "vic@bowness", {GROUP: "viewer"})
    upload = client.post("/collections", files={"file": ("x.geojson", b'{"type":"FeatureCollection","features":[]}')},
                         data={"id": "viewer try", "title": "x", "group": GROUP}, headers=bearer(viewer))  # fmt: skip
    assert upload.status_code == 403
    outsider = client.post("/collections", files={"file": ("x.geojson", b"{}")},
                           data={"id": "outsider try", "title": "x", "group": GROUP},
                           headers=bearer(journey["outsider"]))  # fmt: skip
    assert outsider.status_code == 404


def test_once_public_the_events_are_everywhere_for_everyone(client: TestClient, journey: dict[str, Any]) -> None:
    made_public = client.patch(f"/collections/{quote(EVENTS, safe='')}", json={"visibility": "public"},
                               headers=bearer(journey["publisher"]))  # fmt: skip
    assert made_public.status_code == 200, made_public.text
    assert made_public.json()["visibility"] == "public"
    wait_until_visible(client, EVENTS, {})
    e = quote(EVENTS, safe="")
    items = client.get(f"/collections/{e}/items")
    assert items.status_code == 200 and items.json()["numberMatched"] == 2
    tile = client.get(f"/tiles/{e}/{tile_of(**FESTIVAL)}.pbf")
    assert tile.status_code == 200 and EVENTS in mapbox_vector_tile.decode(tile.content)
    assert tile.headers["cache-control"].startswith("public")
    tilejson = client.get(f"/tiles/{e}.json").json()
    assert tilejson["vector_layers"][0]["id"] == EVENTS
    assert EVENTS in client.get("/styles/city-en.json").text
    near = client.get(f"/nearby?lon={FESTIVAL['lon']}&lat={FESTIVAL['lat']}&layers={e}&at={AT_EVENT}").json()
    festival = near["features"][0]["properties"]
    assert festival["name"] == "Street festival" and festival["happening_now"] is True
    later = client.get(f"/nearby?lon={FESTIVAL['lon']}&lat={FESTIVAL['lat']}&layers={e}&at=2026-07-15T22:00:00Z")
    assert "Street festival" not in {f["properties"]["name"] for f in later.json()["features"]}  # it has ended
    default = client.get(f"/nearby?lon={FESTIVAL['lon']}&lat={FESTIVAL['lat']}&at={AT_EVENT}&limit=100").json()
    assert EVENTS in {f["properties"]["layer"] for f in default["features"]}
    catalog = client.get("/catalog").json()
    dataset = next(d for d in catalog["dcat:dataset"] if d["dct:identifier"] == EVENTS)
    assert dataset["dct:publisher"]["foaf:name"] == "Bowness Gardeners"
    assert dataset["dct:type"] == "community contribution"
    assert PLOTS not in client.get("/catalog").text


def test_another_group_sees_nothing_of_the_plots_even_after_the_events_went_public(
    client: TestClient, journey: dict[str, Any]
) -> None:
    p = quote(PLOTS, safe="")
    for path in (f"/collections/{p}", f"/collections/{p}/items", f"/tiles/{p}/{tile_of(**FESTIVAL)}.pbf"):
        assert client.get(path, headers=bearer(journey["outsider"])).status_code == 404
    assert client.patch(f"/collections/{p}", json={"visibility": "public"},
                        headers=bearer(journey["outsider"])).status_code == 404  # fmt: skip


def test_me_and_group_documents_show_what_each_caller_may_know(client: TestClient, journey: dict[str, Any]) -> None:
    me = client.get("/me", headers=bearer(journey["editor"])).json()
    assert me == {"subject": "sam@bowness", "staff": False, "groups": {GROUP: "editor"}}
    group = client.get(f"/groups/{GROUP}", headers=bearer(journey["publisher"])).json()
    assert group["name"]["en"] == "Bowness Gardeners" and "contact" not in group  # the contact is for staff
    assert client.get(f"/groups/{GROUP}", headers=bearer(journey["outsider"])).status_code == 404
    assert client.get(f"/groups/{GROUP}/members", headers=bearer(journey["editor"])).status_code == 403
    members = client.get(f"/groups/{GROUP}/members", headers=bearer(journey["publisher"])).json()["members"]
    assert {"subject": "sam@bowness", "role": "editor"} in members
    assert client.get("/me").status_code == 401


def test_a_revoked_token_gets_401_at_once(client: TestClient, journey: dict[str, Any], database_url: str) -> None:
    spare = client.post(f"/groups/{GROUP}/tokens", json={"subject": "temp@bowness", "role": "viewer"},
                        headers=bearer(journey["publisher"])).json()  # fmt: skip
    assert client.get("/me", headers=bearer(spare["token"])).status_code == 200
    listed = client.get(f"/groups/{GROUP}/tokens", headers=bearer(journey["publisher"])).json()["tokens"]
    assert spare["prefix"] in {t["prefix"] for t in listed} and all("token" not in t for t in listed)
    revoked = client.delete(f"/groups/{GROUP}/tokens/{spare['prefix']}", headers=bearer(journey["publisher"]))
    assert revoked.status_code == 204
    refused = client.get("/me", headers=bearer(spare["token"]))
    assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
    assert spare["token"] not in refused.text
    chair = geoserver(database_url, "tokens", "list").stdout
    assert "chair@bowness" in chair and journey["publisher"] not in chair
