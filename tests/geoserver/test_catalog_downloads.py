"""The DCAT catalogue and whole-layer downloads: every format readable, public fields only, bounded memory."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pyogrio
import pytest
from fastapi.testclient import TestClient

from layers.ingest.in_place import publish_table
from tests.support.cluster import die_with_parent
from tests.support.layers import drop_layer, manifest
from tests.support.servers import free_port

REQUEST_FIELDS = ["request_id", "service_code", "status", "requested_at", "closed_at"]
BIG_LAYER = "a million points"
BIG_COUNT = 1_000_000


def _count(database_url: str, table: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608 - test tables only
    assert row is not None
    return int(row[0])


# -- the catalogue ------------------------------------------------------------------------------------------
def test_the_catalogue_is_dcat_json_ld(client: TestClient, demo_city: dict[str, str]) -> None:
    response = client.get("/catalog")
    assert response.status_code == 200 and response.headers["content-type"] == "application/ld+json"
    doc = response.json()
    assert doc["@type"] == "dcat:Catalog" and doc["@context"]["dcat"] == "http://www.w3.org/ns/dcat#"
    datasets = {d["dct:identifier"]: d for d in doc["dcat:dataset"]}
    assert set(demo_city) <= set(datasets)
    requests = datasets["service_requests"]
    assert {t["@language"] for t in requests["dct:title"]} == {"en", "fr"}
    assert {t["@language"] for t in requests["dct:description"]} == {"en", "fr"}
    assert requests["dct:license"]["@id"].startswith("https://data.calgary.ca/")
    assert requests["dct:publisher"]["foaf:name"] == "311 Calgary (demo)"
    assert requests["dct:accrualPeriodicity"]["@id"].endswith("/frequency/CONT")
    assert datasets["facilities"]["dct:accrualPeriodicity"]["@id"].endswith("/frequency/WEEKLY")
    assert requests["dct:modified"]["@type"] == "xsd:dateTime"
    fields = {v["schema:name"]: v for v in requests["schema:variableMeasured"]}
    assert list(fields) == REQUEST_FIELDS
    assert any(t["@value"].startswith("Request status") for t in fields["status"]["schema:description"])
    formats = {d.get("dct:format"): d for d in requests["dcat:distribution"]}
    assert {"GeoJSON", "CSV", "GeoPackage"} <= set(formats)
    assert formats["GeoPackage"]["dcat:mediaType"]["@id"].endswith("application/geopackage+sqlite3")
    for d in datasets["wards"]["dcat:distribution"]:
        url = (d.get("dcat:downloadURL") or d["dcat:accessURL"])["@id"]
        assert client.get(url.replace("http://testserver", "")).status_code == 200, url


# -- downloads ----------------------------------------------------------------------------------------------
def test_geojson_download_holds_every_feature_with_public_fields(client: TestClient, database_url: str) -> None:
    response = client.get("/collections/service_requests/download.geojson")
    assert response.status_code == 200 and response.headers["content-type"] == "application/geo+json"
    assert response.headers["content-disposition"].startswith('attachment; filename="service_requests.geojson"')
    doc = response.json()
    assert len(doc["features"]) == _count(database_url, "layer_data.service_requests")
    assert len({f["id"] for f in doc["features"]}) == len(doc["features"])
    assert {tuple(f["properties"]) for f in doc["features"]} == {tuple(REQUEST_FIELDS)}


def test_csv_download_reads_back(client: TestClient, database_url: str, tmp_path: Path) -> None:
    response = client.get("/collections/water_mains/download.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["main_id", "diameter_mm", "material", "install_year", "WKT"]
    assert len(rows) - 1 == _count(database_url, "layer_data.water_mains")
    assert rows[1][-1].startswith("LINESTRING(")
    path = tmp_path / "mains.csv"
    path.write_bytes(response.content)
    info = pyogrio.read_info(path)
    assert info["features"] == len(rows) - 1


def test_geopackage_download_reads_back(client: TestClient, database_url: str, tmp_path: Path) -> None:
    response = client.get("/collections/events/download.gpkg")
    assert response.status_code == 200 and response.headers["content-type"] == "application/geopackage+sqlite3"
    assert int(response.headers["content-length"]) == len(response.content)
    path = tmp_path / "events.gpkg"
    path.write_bytes(response.content)
    info = pyogrio.read_info(path, layer="events")
    assert info["features"] == _count(database_url, "layer_data.events")
    assert list(info["fields"]) == ["event_id", "title", "category", "venue", "starts_at", "ends_at"]
    assert info["crs"] == "EPSG:4326" and info["geometry_type"] == "Point"
    frame = pyogrio.read_dataframe(path, layer="events", where="event_id = 5")
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT title, starts_at, ST_X(geom) FROM layer_data.events WHERE event_id = 5").fetchone()
    assert row is not None
    assert frame.loc[0, "title"] == row[0]
    assert frame.loc[0, "starts_at"].to_pydatetime() == row[1]  # the same instant, time zone included
    assert frame.geometry[0].x == pytest.approx(row[2])


def test_unknown_download_format_is_404(client: TestClient) -> None:
    assert client.get("/collections/events/download.shp").status_code == 404
    assert client.get("/collections/events/download.csv?x=1").status_code == 400


# -- a million features, in bounded memory ------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_layer(database_url: str) -> Iterator[str]:
    """A 1,000,000-point table published in place, with a private column; far from the demo City, so no other
    test meets its points, and gone after this module."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS public.big_points")
        conn.execute(
            "CREATE TABLE public.big_points AS SELECT i AS id, 'code-' || i AS code, mod(i, 7) AS n, "
            "'hidden-' || i AS hidden, ST_SetSRID(ST_MakePoint(10 + mod(i, 1000) * 0.0004, "
            "45 + (i / 1000) * 0.00035), 4326)::geometry(Point, 4326) AS geom "
            "FROM generate_series(1, %s) AS i",
            [BIG_COUNT],
        )
        conn.execute("ALTER TABLE public.big_points ADD PRIMARY KEY (id)")
        conn.execute("ANALYZE public.big_points")
    publish_table(
        database_url,
        manifest(BIG_LAYER, ["id", "code", "n"], id_field="id", source={"table": "public.big_points"}),
    )
    yield BIG_LAYER
    drop_layer(database_url, BIG_LAYER, "public.big_points")


class ServerProcess:
    """The app in a process of its own, so its memory can be measured alone."""

    def __init__(self, database_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        code = (
            "import sys, uvicorn\n"
            "from pathlib import Path\n"
            "from geoserver.app import create_app\n"
            "from geoserver.httpserver import server_options\n"
            "from geoserver.settings import Settings\n"
            "settings = Settings(data_dir=Path(sys.argv[3]), statement_timeout_ms=600000)\n"
            "uvicorn.run(create_app(settings, sys.argv[1]), host='127.0.0.1', port=int(sys.argv[2]), "
            "log_level='warning', **server_options())\n"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, database_url, str(self.port), tempfile.gettempdir()],
            preexec_fn=die_with_parent,  # noqa: PLW1509
        )

    def wait(self, layer: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/collections/{quote(layer, safe='')}", timeout=2):  # noqa: S310
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("the server did not start")

    def rss_kb(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def server_process(database_url: str, big_layer: str, demo_city: dict[str, str]) -> Iterator[ServerProcess]:
    server = ServerProcess(database_url)
    try:
        server.wait(big_layer)
        yield server
    finally:
        server.stop()


def _download(server: ServerProcess, suffix: str, sink: Any) -> int:
    """Download while sampling the server's memory; returns the peak growth in MB."""
    url = f"{server.url}/collections/{quote(BIG_LAYER, safe='')}/download.{suffix}"
    baseline = server.rss_kb()
    peak = baseline
    with httpx.stream("GET", url, timeout=600) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            sink(chunk)
            peak = max(peak, server.rss_kb())
    return (peak - baseline) // 1024


@pytest.mark.parametrize("suffix", ["geojson", "csv", "gpkg"])
def test_a_million_feature_download_stays_in_bounded_memory(
    server_process: ServerProcess, suffix: str, tmp_path: Path
) -> None:
    # Warm the process (imports, GDAL for GeoPackages, pool, first query) so the measure is the download itself.
    for warm in (f"{quote(BIG_LAYER, safe='')}/items?limit=5", f"wards/download.{suffix}"):
        urllib.request.urlopen(f"{server_process.url}/collections/{warm}").read()  # noqa: S310
    path = tmp_path / f"big.{suffix}"
    with path.open("wb") as out:
        growth_mb = _download(server_process, suffix, out.write)
    size_mb = os.path.getsize(path) // (1024 * 1024)
    assert size_mb > 20  # far more than the memory the server may grow by
    assert growth_mb < 50, f"the server grew by {growth_mb} MB for a {size_mb} MB {suffix} download"
    if suffix == "csv":
        with path.open("rb") as f:
            assert sum(1 for _ in f) == BIG_COUNT + 1
    elif suffix == "gpkg":
        info = pyogrio.read_info(path)
        assert info["features"] == BIG_COUNT and list(info["fields"]) == ["id", "code", "n"]
    else:
        with path.open("rb") as f:
            head = f.read(200)
        assert head.startswith(b'{"type":"FeatureCollection"')
        text = path.read_text()
        assert text.count('{"type":"Feature",') == BIG_COUNT and "hidden-" not in text
        assert text.endswith("]}")
