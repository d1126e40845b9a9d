"""The web map's page, files and catalogues, `/docs` from this server, the Content-Security-Policy (no browser)."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from geoserver import webassets
from geoserver.app import create_app
from geoserver.settings import Settings

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
MESSAGES = webassets.WEB_DIR / "messages"
LANGUAGES = ("en", "fr", "pa", "zh-Hans")
OTHER_ORIGIN = re.compile(r"""(?:src|href)\s*=\s*["'](?:https?:)?//""", re.I)


def test_a_browser_at_the_root_gets_the_map_and_clients_keep_their_answers(client: TestClient) -> None:
    redirected = client.get("/", headers=BROWSER, follow_redirects=False)
    assert redirected.status_code == 303 and redirected.headers["location"].endswith("/map")
    french = client.get("/?lang=fr", headers=BROWSER, follow_redirects=False)
    assert french.headers["location"].endswith("/map?lang=fr")
    page = client.get("/?f=html", headers=BROWSER)
    assert page.status_code == 200 and "/map?lang=en" in page.text  # the landing page links to the map
    links = client.get("/").json()["links"]  # clients without Accept get JSON, as before
    to_map = next(x for x in links if x["href"].endswith("/map"))
    assert to_map["rel"] == "related" and to_map["type"] == "text/html"


@pytest.mark.parametrize(
    ("headers", "query", "lang", "title"),
    [
        ({}, "", "en", "City map (demo data)"),
        ({"Accept-Language": "fr-CA,fr;q=0.9"}, "", "fr", "Carte de la Ville"),
        ({"Accept-Language": "pa-IN,pa;q=0.9,en;q=0.5"}, "", "pa", "ਸ਼ਹਿਰ ਦਾ ਨਕਸ਼ਾ"),
        ({"Accept-Language": "zh-CN,zh;q=0.9"}, "", "zh-Hans", "城市地图"),
        ({"Accept-Language": "zh-TW"}, "", "en", "City map"),
        ({"Accept-Language": "fr"}, "?lang=pa", "pa", "ਸ਼ਹਿਰ ਦਾ ਨਕਸ਼ਾ"),
    ],
)
def test_the_map_page_speaks_the_readers_language(
    client: TestClient, headers: dict[str, str], query: str, lang: str, title: str
) -> None:
    response = client.get(f"/map{query}", headers=headers)
    assert response.status_code == 200 and response.headers["content-language"] == lang
    assert f'<html lang="{lang}"' in response.text and title in response.text
    assert not OTHER_ORIGIN.search(response.text)


def test_an_unknown_language_is_a_400(client: TestClient) -> None:
    response = client.get("/map?lang=de")
    assert response.status_code == 400 and response.json()["parameter"] == "lang"


def test_every_catalogue_has_every_message_with_the_same_arguments() -> None:
    catalogues = {lang: json.loads((MESSAGES / f"{lang}.json").read_text(encoding="utf-8")) for lang in LANGUAGES}
    english = catalogues["en"]
    arguments = re.compile(r"\{\s*(\w+)\s*[,}]")
    for lang, messages in catalogues.items():
        assert set(messages) == set(english), lang
        for key, text in messages.items():
            assert set(arguments.findall(text)) == set(arguments.findall(english[key])), (lang, key)
            words = re.sub(r"\{[^{}]*\}", "", text).split()
            # A translation differs from English, unless it is arguments only or one shared word ("Festival").
            assert text.strip() and (lang == "en" or text != english[key] or len(words) <= 1), (lang, key)
    used = set(re.findall(r"""m\(["']([\w.]+)["']\)""", (webassets.WEB_DIR / "map.html").read_text(encoding="utf-8")))
    scripts = "".join(p.read_text(encoding="utf-8") for p in (webassets.WEB_DIR / "static" / "js").glob("*.js"))
    used |= set(re.findall(r"""\bt\(["']([\w.]+)["']""", scripts))
    assert used and used <= set(english), used - set(english)


def test_html_pages_forbid_other_origins_and_json_is_left_alone(client: TestClient) -> None:
    for path in ("/map", "/docs", "/?f=html", "/collections?f=html"):
        policy = client.get(path).headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self';" in policy and "unsafe-inline" not in policy
        assert "http" not in policy, policy
    assert "content-security-policy" not in client.get("/collections").headers


def test_docs_are_served_from_here(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and "/map/vendor/swagger-ui-bundle.js" in page.text
    assert not OTHER_ORIGIN.search(page.text)
    bundle = client.get("/map/vendor/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and bundle.headers["content-type"].startswith("text/javascript")
    assert client.get("/redoc").status_code == 404  # FastAPI's page loads from a CDN: not served


def test_files_are_served_compressed_with_etags_and_nothing_outside_their_folders(client: TestClient) -> None:
    plain = client.get("/map/vendor/maplibre-gl-csp.js", headers={"Accept-Encoding": "identity"})
    packed = client.get("/map/vendor/maplibre-gl-csp.js", headers={"Accept-Encoding": "gzip, br"})
    assert "content-encoding" not in plain.headers and packed.headers["content-encoding"] == "gzip"
    assert packed.content == plain.content and packed.headers["etag"] != plain.headers["etag"]
    again = client.get("/map/vendor/maplibre-gl-csp.js", headers={"If-None-Match": packed.headers["etag"]})
    assert again.status_code == 304 and again.headers["etag"] == packed.headers["etag"]
    assert client.get("/map/messages/pa.json").json()["view.near"] == "ਮੇਰੇ ਨੇੜੇ"
    for bad in (
        "/map/static/../map.html",
        "/map/static/%2e%2e/%2e%2e/app.py",
        "/map/static/..%2f..%2fapp.py",
        "/map/vendor/.built-from",
        "/map/templates/base.html",
        "/map/static/js",
        "/map/messages/en.json.bak",
    ):
        response = client.get(bad)
        assert response.status_code == 404 and response.json()["code"] == "not_found", bad


def test_our_own_files_name_no_other_origin() -> None:
    paths = [*(webassets.WEB_DIR / "static").rglob("*"), *webassets.WEB_DIR.glob("*.html")]
    ours = [p for p in paths if p.is_file() and p.suffix in (".js", ".css", ".html", ".svg")]
    assert len(ours) > 10, ours  # the page, its modules and styles were found
    for path in ours:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), path


def test_a_basemap_is_drawn_under_the_city_and_its_origin_allowed(database_url: str) -> None:
    settings = Settings(
        data_dir=Path(tempfile.gettempdir()) / "geoserver-test-app",
        basemap_style_url="https://tiles.example.org/styles/light.json",
    )
    with TestClient(create_app(settings, database_url)) as basemap_client:
        page = basemap_client.get("/map")
    assert 'data-basemap="https://tiles.example.org/styles/light.json"' in page.text
    policy = page.headers["content-security-policy"]
    assert "connect-src 'self' https://tiles.example.org;" in policy and "script-src 'self';" in policy
