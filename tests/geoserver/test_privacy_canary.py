"""Canary test: a marker in every private column of every demo layer must never reach any response or log line.

Each demo layer is copied (rows, private columns and all) into a table published in place with the same public
fields, moved 20 degrees east so no other test meets its features. Every private column of the copies then holds a
canary; the test walks every endpoint and format and searches each body, header and log record for the canaries and
for the private column names.
"""

from __future__ import annotations

import gzip
import json
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import morecantile
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from layers.catalogue.manifest import load_city_manifests
from layers.catalogue.records import Layer
from layers.catalogue.visibility import ANONYMOUS
from layers.ingest.in_place import publish_table
from tests.support.layers import drop_layer, fresh_registry

CANARY_TEXT = "CANARY-7e3f91"
CANARY_NUMBER = 770077007  # digits that appear in no demo value
CANARY_TIME = "1907-07-07"
SHIFT_DEG = 20.0
# A public column carries a marker too: the search must find it where the private ones must not be.
PUBLIC_MARKER = "PUBLIC-MARKER-5150"


def _canary(data_type: str) -> sql.Composable:
    base = data_type.lower()
    if base in ("bigint", "integer", "smallint"):
        return sql.Literal(CANARY_NUMBER)
    if base in ("double precision", "real", "numeric"):
        return sql.Literal(CANARY_NUMBER + 0.5)
    if "timestamp" in base or base == "date":
        return sql.SQL("{}::timestamptz").format(sql.Literal(CANARY_TIME))
    if base == "boolean":
        return sql.Literal(True)
    if base in ("jsonb", "json"):
        return sql.SQL("{}::jsonb").format(sql.Literal(json.dumps({"canary": CANARY_TEXT})))
    return sql.SQL("{} || ctid::text").format(sql.Literal(CANARY_TEXT + "-"))


@pytest.fixture(scope="module")
def canaries(database_url: str, demo_city: dict[str, str]) -> Iterator[dict[str, Any]]:
    """{copy layer id: source layer} and the private column names, all loaded and published."""
    manifests = {m.id: m for m in load_city_manifests()}
    copies: dict[str, Layer] = {}
    private_names: set[str] = set()
    with psycopg.connect(database_url, autocommit=True) as conn:
        catalogue = fresh_registry(database_url)
        for layer_id in demo_city:
            layer = catalogue.resolve(layer_id, ANONYMOUS)
            private = conn.execute(
                "SELECT name, data_type FROM geoserver.layer_fields WHERE layer_id = %s AND NOT is_public", [layer_id]
            ).fetchall()
            assert private or layer_id in ("communities", "streetlights", "roads"), layer_id
            copy = sql.Identifier("public", f"canary {layer_id}")
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(copy))
            conn.execute(sql.SQL("CREATE TABLE {} AS SELECT * FROM {}").format(copy, layer.table))
            if layer.geometry_3857_column:
                conn.execute(
                    sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(copy, sql.Identifier(layer.geometry_3857_column))
                )
            conn.execute(
                sql.SQL("UPDATE {t} SET {g} = ST_Translate({g}, {dx}, 0)").format(
                    t=copy, g=sql.Identifier(layer.geometry_column), dx=sql.Literal(SHIFT_DEG)
                )
            )
            for name, data_type in private:
                if name == "geom_3857":
                    continue
                private_names.add(name)
                conn.execute(sql.SQL("UPDATE {} SET {} = {}").format(copy, sql.Identifier(name), _canary(data_type)))
            if layer_id == "events":
                conn.execute(sql.SQL("UPDATE {} SET venue = {}").format(copy, sql.Literal(PUBLIC_MARKER)))
            conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(copy, sql.Identifier(layer.id_column)))
            source = manifests[layer_id]
            copy_id = f"canary {layer_id}"
            publish_table(
                database_url,
                source.model_copy(
                    update={
                        "id": copy_id,
                        "source": source.source.model_copy(update={"file": None, "table": f"public.{copy_id}"}),
                        "id_field": layer.id_column,
                    }
                ),
            )
            copies[copy_id] = layer
    assert private_names >= {"requester_contact", "staff_notes", "assessed_value", "organizer_email"}
    yield {"copies": copies, "private_names": private_names}
    for copy_id in copies:
        drop_layer(database_url, copy_id, f"public.{copy_id}")


@pytest.fixture(scope="module")
def canary_client(client: TestClient, canaries: dict[str, Any]) -> TestClient:
    state = client.app.state.geoserver  # type: ignore[attr-defined]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if set(canaries["copies"]) <= {layer.id for layer in state.registry.visible(ANONYMOUS)}:
            return client
        time.sleep(0.05)
    raise AssertionError("the app did not pick up the canary layers")


def test_the_canaries_are_really_in_the_tables(database_url: str, canaries: dict[str, Any]) -> None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            'SELECT count(*) FROM public."canary service_requests" WHERE requester_contact LIKE %s', [CANARY_TEXT + "%"]
        ).fetchone()
        assert row is not None and row[0] > 1000
        row = conn.execute('SELECT min(assessed_value) FROM public."canary parcels"').fetchone()
        assert row == (CANARY_NUMBER,)


def _urls(copy_id: str, layer: Layer, first: dict[str, Any]) -> list[str]:
    """Every read of one layer: metadata, items in every format and CRS, filters, one feature, downloads, tiles."""
    c = f"/collections/{quote(copy_id, safe='')}"
    fid = quote(str(first["id"]), safe="")
    public = layer.field_names[-1]
    value = first["properties"][public]
    urls = [
        c, f"{c}?f=html", f"{c}?lang=fr", f"{c}/queryables",
        f"{c}/items?limit=10000", f"{c}/items?limit=5000&f=html", f"{c}/items?limit=3&lang=fr&f=html",
        f"{c}/items?limit=50&crs=http://www.opengis.net/def/crs/EPSG/0/3776",
        f"{c}/items?limit=50&crs=http://www.opengis.net/def/crs/EPSG/0/4326",
        f"{c}/items?limit=50&crs=http://www.opengis.net/def/crs/EPSG/0/3857",
        f"{c}/items?limit=50&bbox=-100,45,-90,55&sortby=-{quote(public)}",
        f"{c}/items?limit=50&near={-114.07 + SHIFT_DEG},51.05&radius=5000",
        f"{c}/items?limit=50&filter={quote(public)}%20IS%20NOT%20NULL",
        f"{c}/items/{fid}", f"{c}/items/{fid}?f=html", f"{c}/items/{fid}?crs=http://www.opengis.net/def/crs/EPSG/0/3776",
        f"{c}/download.geojson", f"{c}/download.csv", f"{c}/download.gpkg",
        f"{c}/tiles", f"/tiles/{quote(copy_id, safe='')}.json",
        f"{c}/schema", f"{c}/items/{fid}/versions", f"{c}/items/{fid}/versions/1", f"{c}/changes?since=0",
    ]  # fmt: skip
    if isinstance(value, str) and "\x00" not in value:
        urls.append(f"{c}/items?{quote(public)}={quote(value)}")
    if first["geometry"] and first["geometry"]["type"] == "Point":
        lon, lat = first["geometry"]["coordinates"]
        tile = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, 14)
        urls.append(f"{c}/tiles/WebMercatorQuad/14/{tile.y}/{tile.x}")
        urls.append(f"/nearby?lon={lon}&lat={lat}&radius=2000&layers={quote(copy_id, safe='')}")
        urls.append(f"/here?lon={lon}&lat={lat}")
    return urls


def _body(response: Any) -> bytes:
    content = response.content
    if content[:2] == b"\x1f\x8b":
        content = gzip.decompress(content)
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items()).encode()
    return content + b"\n" + headers


def test_no_response_or_log_carries_a_private_value_or_name(
    canary_client: TestClient, canaries: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    names = canaries["private_names"]
    checked = 0
    general = ["/", "/?f=html", "/conformance", "/collections", "/collections?f=html&lang=fr", "/api",
               "/openapi.json", "/catalog", "/docs"]  # fmt: skip
    bodies: list[tuple[str, bytes]] = [(url, _body(canary_client.get(url))) for url in general]
    for query in (CANARY_TEXT, str(CANARY_NUMBER), f"{CANARY_TEXT}&lon={-114.07 + SHIFT_DEG}&lat=51.05"):
        searched = canary_client.get(f"/search?q={query}")  # its links echo the query: only its features are read
        assert searched.status_code == 200, searched.text
        bodies.append((f"/search?q={query}", json.dumps(searched.json()["features"]).encode()))
    for copy_id, layer in canaries["copies"].items():
        first = canary_client.get(f"/collections/{quote(copy_id, safe='')}/items?limit=1").json()["features"][0]
        for url in _urls(copy_id, layer, first):
            response = canary_client.get(url)
            assert response.status_code < 500, (url, response.text[:300])
            bodies.append((url, _body(response)))
    for url, body in bodies:
        checked += 1
        for marker in (CANARY_TEXT, str(CANARY_NUMBER), CANARY_TIME, *names):
            assert marker.encode() not in body, f"{marker!r} leaked in {url}"
    assert checked > 200
    for kind in ("/items?limit=10000", "download.geojson", "download.csv", "download.gpkg", "WebMercatorQuad/14"):
        found = [body for url, body in bodies if "canary%20events" in url and kind in url]
        assert found and all(PUBLIC_MARKER.encode() in body for body in found), kind
    # The server's own log lines (the test client logs the URLs it asks for, the search's query among them).
    logged = "\n".join(record.getMessage() for record in caplog.records if not record.name.startswith("httpx"))
    assert CANARY_TEXT not in logged and str(CANARY_NUMBER) not in logged


PRIVATE_IS_NULL = {"op": "isNull", "args": [{"property": "requester_contact"}]}


@pytest.mark.parametrize(
    "query",
    [
        "requester_contact=x", "sortby=requester_contact", "sortby=-requester_contact", "properties=requester_contact",
        "filter=requester_contact%20LIKE%20'CANARY%25'", "filter=requester_contact%20IS%20NULL",
        "filter=S_INTERSECTS(requester_contact,BBOX(0,0,1,1))",
        "filter-lang=cql2-json&filter=" + quote(json.dumps(PRIVATE_IS_NULL)),
    ],
)  # fmt: skip
def test_private_names_are_refused_exactly_like_unknown_ones(
    canary_client: TestClient, canaries: dict[str, Any], query: str
) -> None:
    # No yes/no oracle: the answer for a private name is the answer for a name that never existed.
    base = f"/collections/{quote('canary service_requests', safe='')}/items?"
    private = canary_client.get(base + query)
    unknown = canary_client.get(base + query.replace("requester_contact", "no_such_field"))
    assert private.status_code == unknown.status_code == 400
    assert private.text.replace("requester_contact", "X") == unknown.text.replace("no_such_field", "X")
    assert CANARY_TEXT not in private.text
