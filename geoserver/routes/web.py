"""The residents' web map (`/map`, its files under `/map/...`) and the API documentation page (`/docs`).

Both pages and everything they load come from this server: MapLibre GL JS, intl-messageformat and Swagger UI are
npm packages copied into `geoserver/web/vendor/` at set-up time (`scripts/build-web`).
"""

from __future__ import annotations

import functools
import json

from fastapi import APIRouter, Request, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from geoserver import i18n, params, webassets
from geoserver.state import StateDep

router = APIRouter(include_in_schema=False)
VIEWS = ("near", "layers", "events", "here")
LANGUAGE_NAMES = {"en": "English", "fr": "Français", "pa": "ਪੰਜਾਬੀ", "zh-Hans": "简体中文"}  # each in itself
_HTML = "text/html; charset=utf-8"
_PAGE_HEADERS = {"Cache-Control": "no-cache", "Vary": "Accept-Language"}


@functools.cache
def _pages() -> Environment:
    """The pages' template environment, built on first use."""
    return Environment(loader=FileSystemLoader(webassets.WEB_DIR), autoescape=select_autoescape(["html"]))


@router.get("/map")
async def web_map(request: Request, state: StateDep) -> Response:
    """The map page, in the language of `lang=`, else of Accept-Language."""
    values = params.single_values(request.query_params.multi_items())
    # The page's own script reads the rest of the view (layers, feature) from the URL; only lang matters here.
    lang = i18n.negotiate_map(values.get("lang"), request.headers.get("accept-language"))
    words = webassets.messages(lang)
    english = webassets.messages("en")
    catalogues = {lang: words} if lang == "en" else {lang: words, "en": english}
    page = (
        _pages()
        .get_template("map.html")
        .render(
            lang=lang,
            m=lambda key: words.get(key) or english[key],
            languages=[(code, LANGUAGE_NAMES[code]) for code in i18n.MAP_LANGUAGES],
            views=VIEWS,
            basemap=state.settings.basemap_style_url,
            catalogues=_script_json(catalogues),
        )
    )
    return Response(page, media_type=_HTML, headers={**_PAGE_HEADERS, "Content-Language": lang})


def _script_json(value: object) -> Markup:
    """JSON to embed in a `<script type="application/json">` block: nothing in it can close the element."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


@router.get("/map/{folder}/{name:path}")
async def web_file(folder: str, name: str, request: Request) -> Response:
    """A file of the map: `static/` (its code and styles), `messages/` (catalogues), `vendor/` (npm packages)."""
    return webassets.asset_response(request, folder, name)


@router.get("/docs")
async def api_docs() -> Response:
    """Swagger UI over this server's OpenAPI document, from this server's own copy of Swagger UI."""
    page = _pages().get_template("docs.html").render()
    return Response(page, media_type=_HTML, headers={"Cache-Control": "no-cache"})
