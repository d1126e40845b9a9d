"""Real clients read our tiles: GDAL's MVT driver, and MapLibre GL JS in Debian's Chromium."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import morecantile
import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_FLAGS
from tests.support.layers import one_row
from tests.support.servers import LiveServer

ROOT = Path(__file__).resolve().parents[2]
MAPLIBRE = ROOT / "node_modules" / "maplibre-gl" / "dist" / "maplibre-gl.js"


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


@pytest.fixture(autouse=True)
def _chromium_present() -> None:
    assert Path(CHROMIUM).exists(), "run scripts/test (it installs Debian's chromium)"
