"""Real clients read our tiles: GDAL's MVT driver, MapLibre GL JS in Debian's Chromium, and MapLibre again reading a
PMTiles export from a plain static file server, with the `pmtiles` protocol from npm."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import morecantile
import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_FLAGS
from tests.support.cli import geoserver
from tests.support.layers import one_row
from tests.support.servers import LiveServer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "lib"))
from rangeserver import StaticServer  # noqa: E402 - scripts/serve-static's server, as the README tells to use

ROOT = Path(__file__).resolve().parents[2]
MAPLIBRE = ROOT / "node_modules" / "maplibre-gl" / "dist" / "maplibre-gl.js"
PMTILES_JS = ROOT / "node_modules" / "pmtiles" / "dist" / "pmtiles.js"


def test_gdal_reads_a_composite_tile(live_server: LiveServer, tmp_path: Path) -> None:
    t = morecantile.tms.get("WebMercatorQuad").tile(-114.0719, 51.0447, 14)
    raw = urllib.request.urlopen(f"{live_server.url}/tiles/roads,wards/14/{t.x}/{t.y}.pbf").read()  # noqa: S310
    tile = tmp_path / f"{t.y}.pbf"
    tile.write_bytes(raw)
    # GDAL's MVT driver needs the tile's z/x/y: give them through open options.
    info = subprocess.run(
        ["ogrinfo", "-ro", "-so", "-al", "-oo", f"X={t.x}", "-oo", f"Y={t.y}", "-oo", "Z=14", f"MVT:{tile}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Layer name: roads" in info and "Layer name: wards" in info
    assert "Feature Count: 0" not in info.split("Layer name: wards")[1].split("Layer name")[0]


def test_maplibre_draws_the_demo_style_and_finds_a_seeded_feature(live_server: LiveServer, database_url: str) -> None:
    from playwright.sync_api import sync_playwright

    assert MAPLIBRE.exists(), "run scripts/test (it installs maplibre-gl from npm)"
    facility_id, lon, lat = one_row(
        database_url,
        "SELECT facility_id, ST_X(geom), ST_Y(geom) FROM layer_data.facilities "
        "WHERE category = 'library' ORDER BY facility_id LIMIT 1",
    )
    page_url = f"{live_server.url}/__maplibre_test__.html"
    html = (
        '<!doctype html><html><body style="margin:0">'
        '<div id="map" style="width:800px;height:600px"></div></body></html>'
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page_errors: list[str] = []
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            # The page is served at the server's own origin, so the style, TileJSON and tiles are same-origin.
            page.route(page_url, lambda route: route.fulfill(body=html, content_type="text/html"))
            page.goto(page_url)
            page.add_script_tag(path=str(MAPLIBRE))
            result = page.evaluate(
                """([styleUrl, lon, lat]) => new Promise((resolve) => {
                    const errors = [];
                    const map = new maplibregl.Map({
                        container: 'map', style: styleUrl, center: [lon, lat], zoom: 15, fadeDuration: 0,
                    });
                    map.on('error', (e) => errors.push(String(e.error && e.error.message || e)));
                    map.once('idle', () => {
                        const p = map.project([lon, lat]);
                        const found = map.queryRenderedFeatures(
                            [[p.x - 4, p.y - 4], [p.x + 4, p.y + 4]], {layers: ['facilities-circle']});
                        resolve({errors, found: found.map((f) => ({id: f.id, ...f.properties}))});
                    });
                    setTimeout(() => resolve({errors: errors.concat(['timeout']), found: []}), 45000);
                })""",
                [f"{live_server.url}/styles/city-en.json", lon, lat],
            )
        finally:
            browser.close()
    assert page_errors == [] and result["errors"] == [], json.dumps(result)[:2000]
    assert facility_id in [f["id"] for f in result["found"]], json.dumps(result)[:2000]  # the MVT feature id


class CountedApp:
    """An ASGI app passing everything to another, counting the HTTP requests it sees."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.http_requests = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.http_requests += 1
        await self.app(scope, receive, send)


@pytest.fixture
def watched_server(database_url: str, demo_city: dict[str, str], app_data_dir: Path) -> Any:
    """The server running beside the static files, counting every request it gets."""
    from geoserver.app import create_app
    from geoserver.settings import Settings

    counted = CountedApp(create_app(Settings(data_dir=app_data_dir, connect_timeout_s=2), database_url))
    with LiveServer(counted):
        counted.http_requests = 0  # the readiness checks are not the page's
        yield counted


PMTILES_PAGE = """<!doctype html><html><body style="margin:0"><div id="map" style="width:800px;height:600px"></div>
<script src="maplibre-gl.js"></script><script src="pmtiles.js"></script></body></html>"""


def test_maplibre_draws_a_pmtiles_export_from_static_files_alone(
    database_url: str, watched_server: CountedApp, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    assert PMTILES_JS.exists(), "run scripts/test (it installs pmtiles from npm)"
    site = tmp_path / "site"
    site.mkdir()
    geoserver(database_url, "export", "pmtiles", "wards,roads,facilities", "--zooms", "0-14",
              str(site / "city.pmtiles"), "--style", str(site / "city.style.json"))  # fmt: skip
    shutil.copy(MAPLIBRE, site)
    shutil.copy(PMTILES_JS, site)
    (site / "index.html").write_text(PMTILES_PAGE, encoding="utf-8")
    facility_id, lon, lat = one_row(
        database_url,
        "SELECT facility_id, ST_X(geom), ST_Y(geom) FROM layer_data.facilities ORDER BY facility_id LIMIT 1",
    )
    with StaticServer(site) as static, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page_errors: list[str] = []
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto(f"{static.url}/index.html")
            result = page.evaluate(DRAW_FROM_ARCHIVE, [lon, lat])
        finally:
            browser.close()
    assert page_errors == [] and result["errors"] == [], json.dumps(result)[:2000]
    assert facility_id in result["found"], json.dumps(result)[:2000]
    assert {"wards", "roads", "facilities"} <= set(result["drawn"]), result["drawn"]
    elsewhere = [url for url in requested if not url.startswith((f"{static.url}/", "blob:", "data:"))]
    assert f"{static.url}/city.pmtiles" in requested and elsewhere == [], elsewhere  # MapLibre's worker is a blob:
    archive_reads = [r for r in static.seen.requests if r[0] == "/city.pmtiles"]
    assert archive_reads and all(status == 206 and byte_range for _, byte_range, status in archive_reads)
    assert watched_server.http_requests == 0


# The archive's style from the same folder; the pmtiles protocol reads the archive by byte ranges.
DRAW_FROM_ARCHIVE = """([lon, lat]) => new Promise((resolve) => {
    const errors = [];
    maplibregl.addProtocol('pmtiles', new pmtiles.Protocol().tile);
    const map = new maplibregl.Map({
        container: 'map', style: 'city.style.json', center: [lon, lat], zoom: 15, fadeDuration: 0,
    });
    map.on('error', (e) => errors.push(String(e.error && e.error.message || e)));
    map.once('idle', () => {
        const p = map.project([lon, lat]);
        const found = map.queryRenderedFeatures(
            [[p.x - 4, p.y - 4], [p.x + 4, p.y + 4]], {layers: ['facilities-circle']});
        const drawn = [...new Set(map.queryRenderedFeatures().map((f) => f.sourceLayer))];
        resolve({errors, found: found.map((f) => f.id), drawn});
    });
    setTimeout(() => resolve({errors: errors.concat(['timeout']), found: [], drawn: []}), 45000);
})"""


@pytest.fixture(autouse=True)
def _chromium_present() -> None:
    assert Path(CHROMIUM).exists(), "run scripts/test (it installs Debian's chromium)"
