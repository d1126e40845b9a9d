"""MapLibre styles for the demo City, one per language."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from geoserver.auth import PrincipalDep
from geoserver.media import STYLE_JSON
from geoserver.responses import base_url, json_response
from geoserver.state import StateDep
from layers.errors import NotFound
from tiles.tilejson import LANGUAGES, STYLE_NAMES, style

router = APIRouter(tags=["tiles"])
STYLE_ID = "city"


def _language(style_id: str, request: Request) -> str:
    """city-en / city-fr name their language; plain `city` follows Accept-Language."""
    if style_id.startswith(f"{STYLE_ID}-") and style_id.removeprefix(f"{STYLE_ID}-") in LANGUAGES:
        return style_id.removeprefix(f"{STYLE_ID}-")
    if style_id != STYLE_ID:
        raise NotFound(f"no style named {style_id!r}", parameter="styleId")
    accept = request.headers.get("accept-language", "").lower()
    return "fr" if accept.startswith("fr") else "en"


@router.get("/styles", summary="The map styles")
async def styles(request: Request) -> dict[str, Any]:
    """One style per language, drawing every public layer."""
    base = base_url(request)
    return {
        "styles": [
            {
                "id": f"{STYLE_ID}-{lang}",
                "title": STYLE_NAMES[lang],
                "links": [
                    {
                        "rel": "stylesheet",
                        "href": f"{base}/styles/{STYLE_ID}-{lang}.json",
                        "type": STYLE_JSON,
                    }
                ],
            }
            for lang in LANGUAGES
        ]
    }


@router.get("/styles/{style_file}", summary="A MapLibre style (version 8)")
async def style_document(style_file: str, request: Request, state: StateDep, principal: PrincipalDep) -> Response:
    """The style with every layer the caller may see, from one composite vector source."""
    if not style_file.endswith(".json"):
        raise NotFound(f"no style at {style_file!r}; styles are at /styles/{{id}}.json", parameter="styleId")
    lang = _language(style_file.removesuffix(".json"), request)
    layers = state.registry.visible(principal)
    if not layers:
        raise NotFound("no layers to draw yet", parameter="styleId")
    doc = style(layers, state.tiles, base_url(request), lang)
    return json_response(doc, public=all(layer.is_public for layer in layers))
