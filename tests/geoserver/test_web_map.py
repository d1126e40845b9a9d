"""The residents' map in Debian's Chromium: no other origin, no console error, axe-core in four languages, keyboard
only, the list equal to /nearby, screenshots, and signing in with a group member's token."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from layers.catalogue.visibility import Principal
from layers.ingest.load import load_file
from tests.support.access import issue
from tests.support.browser import CHROMIUM, CHROMIUM_FLAGS, READY, tab_until, violations, watch, with_axe
from tests.support.layers import drop_layer, manifest, point, write_geojson
from tests.support.servers import LiveServer
from tests.support.uploads import geojson_bytes

HERE = {"longitude": -114.07, "latitude": 51.05}  # the mocked geolocation: downtown
LANGUAGES = ("en", "fr", "pa", "zh-Hans")
GROUP_LAYER = "map members' overlay"
UPLOADED = "map's garden: days"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, for the module."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "run scripts/test (it installs Debian's chromium)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def open_map(browser: Any, server: LiveServer, path: str = "/map", **context: Any) -> tuple[Any, Any]:
    """A fresh page at `path` (geolocation allowed and mocked), watched, once the map has drawn."""
    page = browser.new_context(geolocation=HERE, permissions=["geolocation"], **context).new_page()
    seen = watch(page, server.url)
    with_axe(page)
    page.goto(f"{server.url}{path}")
    page.wait_for_selector(READY, state="attached", timeout=90_000)
    return page, seen


def results_of(page: Any) -> list[str]:
    """The near-me list's `layer:id` keys, in order, once it has results."""
    page.wait_for_selector("#near-results button.result", timeout=30_000)
    keys: list[str] = page.eval_on_selector_all("#near-results button.result", "els => els.map(e => e.dataset.key)")
    return keys


def nearby(server: LiveServer, limit: int = 25) -> list[str]:
    """What /nearby answers for the mocked position with the map's own parameters."""
    url = f"{server.url}/nearby?lon={HERE['longitude']}&lat={HERE['latitude']}&limit={limit}"
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - the test's own server
        body = json.load(response)
    return [f"{f['properties']['layer']}:{f['id']}" for f in body["features"]]


def test_the_map_and_docs_load_with_no_console_error_and_no_other_origin(browser: Any, live_server: LiveServer) -> None:
    page, seen = open_map(browser, live_server)
    page.click("#tab-events")
    page.wait_for_selector("#events-status:not(:empty)")  # (no wait_for_function: the page's CSP forbids eval)
    assert page.evaluate("cityMap.getStyle().layers.length") > 10
    docs = browser.new_context().new_page()
    docs_seen = watch(docs, live_server.url)
    docs.goto(f"{live_server.url}/docs")
    docs.wait_for_selector("#swagger-ui .info .title", timeout=60_000)
    assert "City location services" in docs.inner_text("#swagger-ui .information-container")
    for watched in (seen, docs_seen):
        assert watched.elsewhere == [] and watched.errors == [], (watched.elsewhere, watched.errors)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_axe_finds_nothing_on_the_map_near_me_whats_here_and_sign_in(
    browser: Any, live_server: LiveServer, lang: str
) -> None:
    page, seen = open_map(browser, live_server, f"/map?lang={lang}")
    assert page.evaluate("document.documentElement.lang") == lang
    found = {"map": violations(page, live_server.url)}
    page.click("#near-locate")
    results_of(page)
    page.click("#near-results li:first-child button")
    found["near me"] = violations(page, live_server.url)
    page.focus("canvas.maplibregl-canvas")
    page.keyboard.press("Enter")
    page.wait_for_selector("#here-areas dl", timeout=30_000)
    found["what's here"] = violations(page, live_server.url)
    page.click("#member")
    page.wait_for_selector("#sign-in[open]")
    found["sign-in dialog"] = violations(page, live_server.url)
    assert all(not v for v in found.values()), json.dumps(found, ensure_ascii=False, indent=1)
    assert seen.errors == [] and seen.elsewhere == []


def test_keyboard_only_a_layer_near_me_and_a_result_that_matches_nearby(browser: Any, live_server: LiveServer) -> None:
    page, seen = open_map(browser, live_server, "/map?lang=en")
    keyboard = page.keyboard
    # Turn on the 311 layer: to the tabs, right arrow to Layers, then Tab to its box and Space.
    tab_until(page, "el.getAttribute('role') === 'tab'")
    keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.id") == "tab-layers"
    assert page.is_visible("#view-layers")
    tab_until(page, "el.dataset.layer === 'service_requests'")
    assert not page.is_checked("input[data-layer=service_requests]")
    keyboard.press("Space")
    assert page.is_checked("input[data-layer=service_requests]")
    visible = "cityMap.getLayoutProperty('service_requests-circle', 'visibility')"
    assert page.evaluate(visible) == "visible" and "service_requests" in page.evaluate("location.search")
    # Near me with the (mocked) position: back to the tabs, left to Near me, Tab to the button, Enter.
    tab_until(page, "el.getAttribute('role') === 'tab'", backwards=True)
    keyboard.press("ArrowLeft")
    tab_until(page, "el.id === 'near-locate'")
    keyboard.press("Enter")
    shown = results_of(page)
    assert shown == nearby(live_server)  # the list is /nearby's answer for the same point, in the same order
    # Open the first result: its details show, the map selects it, the URL names it.
    tab_until(page, "el.classList.contains('result')")
    keyboard.press("Enter")
    first = page.locator("#near-results button.result").first
    assert first.get_attribute("aria-expanded") == "true" and page.is_visible("#near-details-0")
    assert f"feature={shown[0]}" in page.evaluate("decodeURIComponent(location.search)")
    selected = page.evaluate("async () => (await cityMap.getSource('selection').getData()).features")
    assert [f"{f['properties']['layer']}:{f['id']}" for f in selected] == [shown[0]]
    assert page.evaluate("document.activeElement.classList.contains('result')")  # focus stayed where it was
    assert seen.errors == [] and seen.elsewhere == []


def test_screenshots_on_a_phone_and_a_laptop(browser: Any, live_server: LiveServer, tmp_path_factory: Any) -> None:
    folder = Path(os.environ.get("GEOSERVER_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    # A phone, a laptop, and the laptop at 200 % zoom (half as many CSS pixels each way).
    for width, height in ((360, 640), (1280, 800), (640, 400)):
        page, seen = open_map(browser, live_server, "/map?lang=en", viewport={"width": width, "height": height})
        page.click("#near-locate")
        results_of(page)
        page.wait_for_timeout(1500)  # the map's move to the results
        page.evaluate("window.scrollTo(0, 0)")
        path = folder / f"map-{width}x{height}.png"
        page.screenshot(path=str(path))
        assert path.stat().st_size > 20_000 and seen.errors == []
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= width  # nothing wider than the screen: no sideways scrolling
    print(f"screenshots in {folder}")


@pytest.fixture(scope="module")
def group_layer(live_server: LiveServer, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A layer only the 'map-testers' group sees, once the running app has picked it up."""
    path = write_geojson(tmp_path_factory.mktemp("g") / "g.geojson", [({"name": "Garden"}, point(-114.07, 51.05))])
    overlay = manifest(GROUP_LAYER, ["name"], visibility="group:map-testers", category="facilities")
    load_file(database_url, overlay, path)
    state = live_server.server.config.app.state.geoserver  # type: ignore[union-attr]
    deadline = time.monotonic() + 10
    while GROUP_LAYER not in {layer.id for layer in state.registry.visible(Principal("t", is_staff=True))}:
        assert time.monotonic() < deadline, "the app did not pick up the group layer"
        time.sleep(0.05)
    yield GROUP_LAYER
    drop_layer(database_url, GROUP_LAYER)


def test_a_member_signs_in_and_sees_the_groups_layer(
    browser: Any, live_server: LiveServer, group_layer: str, database_url: str
) -> None:
    page, seen = open_map(browser, live_server, "/map?lang=en")
    assert not page.query_selector(f'input[data-layer="{group_layer}"]')
    page.click("#member")
    page.fill("#sign-in-token", "not-a-real-token")
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_selector("#sign-in-error:not(:empty)")
    assert page.evaluate("sessionStorage.length") == 0  # a refused token is never kept
    # Playwright's sync API holds this thread's event loop: issue the token from another thread.
    with ThreadPoolExecutor(1) as pool:
        token = pool.submit(issue, database_url, "map-member", {"map-testers": "publisher"}).result()
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.headers.get("authorization") == f"Bearer {token}" else None)
    page.fill("#sign-in-token", token)
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_selector(f'input[data-layer="{group_layer}"]', state="attached", timeout=90_000)
    page.wait_for_selector(READY, state="attached", timeout=90_000)
    assert page.evaluate("sessionStorage.getItem('geoserver.map.token')") == token
    assert token not in page.evaluate("JSON.stringify(localStorage) + location.href")
    assert any("/tiles/" in url for url in sent) and any("/styles/" in url for url in sent)  # the bearer goes along
    page.click("#tab-member")
    assert page.is_visible("#view-member") and f"{group_layer} (test)" in page.inner_text("#view-member")
    assert page.is_checked(f'input[data-layer="{group_layer}"]')  # the group's layers are shown at once
    assert page.inner_text("#layer-list fieldset:first-child legend") == "My groups' layers"
    assert seen.elsewhere == []
    # The browser logs the refused token's 401; nothing else.
    assert [e.split("status of ")[-1][:3] for e in seen.errors] == ["401"], seen.errors


def sign_in(page: Any, token: str) -> None:
    """Sign in through the dialog, and wait for the page to come back with the member's view."""
    page.click("#member")
    page.fill("#sign-in-token", token)
    page.click("#sign-in-form button[type=submit]")
    page.wait_for_selector("#tab-member:not([hidden])", timeout=90_000)
    page.wait_for_selector(READY, state="attached", timeout=90_000)


def anonymous_status(server: LiveServer, layer: str) -> tuple[int, str | None]:
    """What /collections/{layer} answers without a token: the status and the layer's visibility."""
    try:
        with urllib.request.urlopen(f"{server.url}/collections/{quote(layer, safe='')}", timeout=30) as response:  # noqa: S310
            return response.status, json.load(response)["visibility"]
    except urllib.error.HTTPError as refused:
        return refused.code, None


@pytest.fixture
def uploaded(database_url: str) -> Iterator[str]:
    """The id the next test uploads through the map (quote, space, colon), removed afterwards."""
    yield UPLOADED
    drop_layer(database_url, UPLOADED)


def upload_through_the_dialog(page: Any, layer: str, group: str) -> list[dict[str, Any]]:
    """Fill and send the upload dialog with a one-point GeoJSON file; axe-core's findings on the open dialog."""
    page.click("#tab-member")
    page.click("#member-upload")
    page.wait_for_selector("#upload[open]")
    found = violations(page, page.url.split("/map")[0])
    content = geojson_bytes([({"name": "Seed swap"}, point(HERE["longitude"], HERE["latitude"]))])
    page.set_input_files("#upload-file", files=[{"name": "days.geojson", "mimeType": "application/geo+json",
                                                 "buffer": content}])  # fmt: skip
    page.fill("#upload-layer-title", "Garden days")
    page.fill("#upload-id", layer)
    page.select_option("#upload-group", group)
    page.click("#upload-form button[type=submit]")
    return found


def test_a_member_uploads_an_overlay_sees_it_and_makes_it_public(
    browser: Any, live_server: LiveServer, database_url: str, uploaded: str
) -> None:
    with ThreadPoolExecutor(1) as pool:  # the sync API holds this thread's event loop
        token = pool.submit(issue, database_url, "map-uploader", {"map-uploaders": "publisher"}).result()
    page, seen = open_map(browser, live_server, "/map?lang=en")
    sign_in(page, token)
    found = {"upload dialog": upload_through_the_dialog(page, uploaded, "map-uploaders")}
    row = f'#member-layers li[data-layer="{uploaded}"]'
    page.wait_for_selector(row, timeout=120_000)  # the page reloads with the new layer
    page.wait_for_selector(READY, state="attached", timeout=90_000)
    page.wait_for_selector("#member-status:has-text('Garden days')")  # announced after the reload
    assert page.is_checked(f'input[data-layer="{uploaded}"]') and "Seen by: map-uploaders" in page.inner_text(row)
    drawn = f"cityMap.queryRenderedFeatures().filter((f) => f.sourceLayer === {json.dumps(uploaded)}).length"
    assert page.evaluate(drawn) == 1  # on the map
    assert anonymous_status(live_server, uploaded) == (404, None)
    page.click(f"{row} button")
    page.wait_for_selector("#make-public[open]")
    found["make-public dialog"] = violations(page, live_server.url)
    page.click("#make-public-confirm")
    page.wait_for_selector("#member-status:has-text('is now public')")
    assert not page.is_visible("#make-public") and not page.query_selector(f"{row} button")
    assert "Seen by: everyone" in page.inner_text(row)
    assert anonymous_status(live_server, uploaded) == (200, "public")
    assert all(not v for v in found.values()), json.dumps(found, indent=1)
    assert seen.errors == [] and seen.elsewhere == []
