"""Real OGC API Features clients against a live server: GDAL's OAPIF driver (ogrinfo, ogr2ogr) and OWSLib."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import psycopg
import pytest
from owslib.ogcapi.features import Features

from layers.catalogue.visibility import ANONYMOUS
from tests.support.layers import fresh_registry, one_row
from tests.support.servers import LiveServer

GDAL_ENV = {"PATH": "/usr/bin:/bin", "GDAL_HTTP_TIMEOUT": "60", "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ""}


def _gdal(*args: str) -> str:
    result = subprocess.run(list(args), capture_output=True, text=True, env=GDAL_ENV, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _db_counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        layers = fresh_registry(database_url).visible(ANONYMOUS)
        return {
            layer.id: conn.execute(psycopg.sql.SQL("SELECT count(*) FROM {}").format(layer.table)).fetchone()[0]  # type: ignore[index]
            for layer in layers
        }


def test_ogrinfo_lists_every_public_collection(live_server: LiveServer, database_url: str) -> None:
    listing = _gdal("ogrinfo", "-ro", "-q", f"OAPIF:{live_server.url}")
    names = set(re.findall(r"^\d+: (.+?) \(title:", listing, flags=re.MULTILINE))
    assert names == set(_db_counts(database_url))


def test_gdal_feature_counts_equal_the_database(
    live_server: LiveServer, database_url: str, demo_city: dict[str, str]
) -> None:
    counts = _db_counts(database_url)
    for layer_id in demo_city:
        summary = _gdal("ogrinfo", "-ro", "-so", f"OAPIF:{live_server.url}", layer_id)
        reported = re.search(r"Feature Count: (\d+)", summary)
        assert reported is not None, summary
        assert int(reported.group(1)) == counts[layer_id], layer_id


def test_ogr2ogr_pages_through_a_layer_without_duplicates_or_gaps(
    live_server: LiveServer, database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "requests.geojson"
    _gdal("ogr2ogr", "-f", "GeoJSON", str(out), f"OAPIF:{live_server.url}", "service_requests", "-oo", "PAGE_SIZE=333")
    ids = [f["properties"]["request_id"] for f in json.loads(out.read_text())["features"]]
    with psycopg.connect(database_url) as conn:
        expected = [row[0] for row in conn.execute("SELECT request_id FROM layer_data.service_requests")]
    assert len(ids) == len(set(ids)), "a page repeated a feature"
    assert set(ids) == set(expected), "a page skipped a feature"
    assert len(ids) > 333 * 10  # many pages were really walked


def test_ogr2ogr_with_a_spatial_filter_reads_what_the_database_holds(
    live_server: LiveServer, database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "parcels.geojson"
    # A box around the first parcels, wherever the demo generator put them.
    row = one_row(
        database_url,
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) AS e FROM "
        "(SELECT geom FROM layer_data.parcels ORDER BY parcel_id LIMIT 40) AS first) AS box",
    )
    box = [str(round(v, 4)) for v in row]
    with psycopg.connect(database_url) as conn:
        expected = {
            r[0]
            for r in conn.execute(
                "SELECT parcel_id FROM layer_data.parcels "
                "WHERE ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))",
                [float(v) for v in box],
            )
        }
    _gdal("ogr2ogr", "-f", "GeoJSON", str(out), f"OAPIF:{live_server.url}", "parcels", "-spat", *box)
    got = {f["properties"]["parcel_id"] for f in json.loads(out.read_text())["features"]}
    assert expected and got == expected


@pytest.fixture(scope="module")
def owslib(live_server: LiveServer) -> Features:
    """OWSLib's client on the live server (it sends no Accept header: JSON is the default)."""
    return Features(live_server.url)


def test_owslib_reads_conformance_and_collections(owslib: Features, database_url: str) -> None:
    conformance = owslib.conformance()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conformance
    assert "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter" in conformance
    ids = {c["id"] for c in owslib.collections()["collections"]}
    assert ids == set(_db_counts(database_url))
    assert owslib.collection("wards")["itemType"] == "feature"


def test_owslib_reads_items_with_a_bbox(owslib: Features, database_url: str) -> None:
    bbox = [-114.10, 51.00, -114.00, 51.08]
    page = owslib.collection_items("service_requests", bbox=bbox, limit=50)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM layer_data.service_requests "
            "WHERE ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))",
            bbox,
        ).fetchone()
    assert row is not None
    assert page["numberMatched"] == row[0] > 50
    assert page["numberReturned"] == len(page["features"]) == 50
    for feature in page["features"]:
        lon, lat = feature["geometry"]["coordinates"]
        assert bbox[0] <= lon <= bbox[2] and bbox[1] <= lat <= bbox[3]


def test_owslib_reads_queryables_and_filters_with_cql2(owslib: Features, database_url: str) -> None:
    queryables = owslib.collection_queryables("service_requests")
    expected = {"geometry", "request_id", "service_code", "status", "requested_at", "closed_at"}
    assert set(queryables["properties"]) == expected
    cql = "status = 'open' AND service_code IN ('POTHOLE', 'GRAFFITI')"
    page = owslib.collection_items("service_requests", filter=cql, limit=1000, **{"filter-lang": "cql2-text"})
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM layer_data.service_requests "
            "WHERE status = 'open' AND service_code IN ('POTHOLE', 'GRAFFITI')"
        ).fetchone()
    assert row is not None and row[0] > 0
    assert page["numberMatched"] == row[0] == len(page["features"])
    assert {f["properties"]["status"] for f in page["features"]} == {"open"}
