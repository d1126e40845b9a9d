"""HTML pages of the OGC API (both languages, escaping), and a stuck query that must fail fast."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient

from layers.catalogue.visibility import Principal
from layers.ingest.load import load_file
from tests.support.layers import drop_layer, manifest, point, write_geojson
from tests.support.servers import until_ready

STAFF = Principal(subject="test staff", is_staff=True)


@pytest.fixture(scope="module")
def app_client(client: TestClient) -> TestClient:
    """The shared client."""
    return client


def test_html_pages_in_english_and_french(app_client: TestClient) -> None:
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    landing = app_client.get("/?f=html", headers=browser)
    assert landing.headers["content-type"].startswith("text/html") and "<h1>City location services</h1>" in landing.text
    french = app_client.get("/collections", headers={**browser, "Accept-Language": "fr-CA,fr;q=0.9,en;q=0.5"})
    assert french.headers["content-language"] == "fr" and "Installations (données de démonstration)" in french.text
    items = app_client.get("/collections/facilities/items?f=html&lang=fr&limit=5")
    assert items.headers["content-type"].startswith("text/html") and "Entités de" in items.text
    assert items.text.count("<tr>") == 6
    english = app_client.get("/collections/facilities?f=html", headers={"Accept-Language": "fr"})
    assert "Facilities (demo data)" not in english.text and "Installations" in english.text
    assert "Facilities (demo data)" in app_client.get("/collections/facilities?f=html&lang=en").text
    item = app_client.get("/collections/facilities/items/2?f=html")
    assert item.status_code == 200 and "<table>" in item.text
    # GDAL and OWSLib send JSON-ish or no Accept headers: they get JSON.
    assert app_client.get("/collections", headers={"Accept": "application/json"}).json()["collections"]
    assert app_client.get("/collections/wards/items", headers={"Accept": "*/*"}).json()["type"] == "FeatureCollection"


MARKUP = "<b>markup <i>"


def test_html_escapes_what_it_shows(app_client: TestClient, database_url: str, tmp_path: Path) -> None:
    path = write_geojson(tmp_path / "x.geojson", [({"label": "<script>alert(1)</script>"}, point(-113.5, 53.5))])
    load_file(database_url, manifest(MARKUP, ["label"]), path)
    state = app_client.app.state.geoserver  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and MARKUP not in {x.id for x in state.registry.visible(STAFF)}:
        time.sleep(0.05)
    page = app_client.get(f"/collections/{quote(MARKUP, safe='')}/items?f=html").text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    listing = app_client.get("/collections?f=html").text
    drop_layer(database_url, MARKUP)
    assert "<b>markup" not in listing and "&lt;b&gt;markup" in listing


# -- the database under stress ------------------------------------------------------------------------------
@pytest.fixture
def impatient_client(database_url: str, demo_city: dict[str, str]) -> Iterator[TestClient]:
    """An app whose statements give up after 300 ms."""
    from geoserver.app import create_app
    from geoserver.settings import Settings

    settings = Settings(
        data_dir=Path(tempfile.gettempdir()) / "geoserver-test-app", connect_timeout_s=2, statement_timeout_ms=300
    )
    with TestClient(create_app(settings, database_url)) as test_client:
        yield until_ready(test_client)


def test_a_stuck_query_fails_fast_and_the_pool_recovers(impatient_client: TestClient, database_url: str) -> None:
    locked = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        with psycopg.connect(database_url) as conn, conn.transaction():
            conn.execute("LOCK TABLE layer_data.wards IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(10)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        stuck = impatient_client.get("/collections/wards/items")
        assert stuck.status_code == 503 and "Retry-After" in stuck.headers
        assert time.monotonic() - started < 3
        assert impatient_client.get("/collections/facilities/items?limit=5").status_code == 200
    finally:
        release.set()
        holder.join(10)
    for _ in range(20):  # more requests than the pool has connections: none was lost
        assert impatient_client.get("/collections/wards/items?limit=2").status_code == 200
