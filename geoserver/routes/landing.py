"""The landing page and the conformance declaration (OGC API - Common / Features Part 1)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from geoserver import html, i18n
from geoserver.conformance import conformance
from geoserver.media import HTML, JSON, JSON_LD, OPENAPI_JSON
from geoserver.responses import base_url, json_response, link, negotiate, self_links

router = APIRouter(tags=["capabilities"])
TILING_SCHEMES = "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes"
CONFORMANCE_REL = "http://www.opengis.net/def/rel/ogc/1.0/conformance"
DATA_REL = "http://www.opengis.net/def/rel/ogc/1.0/data"


@router.get("/", summary="Landing page", response_class=Response)
async def landing(request: Request) -> Response:
    """What this server is, and where to go next."""
    asked = negotiate(request)
    base, lang = base_url(request), asked.lang
    if asked.format == "html" and "f" not in asked.values:
        # A browser that asked for nothing in particular gets the residents' map; `f=html` keeps this page.
        return RedirectResponse(f"{base}/map" + (f"?lang={lang}" if "lang" in asked.values else ""), status_code=303)
    t = i18n.text
    doc = {
        "title": t(lang, "title"),
        "description": t(lang, "description"),
        "links": [
            *self_links(request, lang),
            link(f"{base}/map", "related", HTML, t(lang, "map")),
            link(f"{base}/api", "service-desc", OPENAPI_JSON, t(lang, "api")),
            link(f"{base}/docs", "service-doc", HTML, t(lang, "api_doc")),
            link(f"{base}/conformance", "conformance", JSON, t(lang, "conformance")),
            link(f"{base}/conformance", CONFORMANCE_REL, JSON, t(lang, "conformance")),
            link(f"{base}/collections", "data", JSON, t(lang, "collections")),
            link(f"{base}/collections", DATA_REL, JSON, t(lang, "collections")),
            link(f"{base}/tileMatrixSets", TILING_SCHEMES, JSON, t(lang, "tiling_schemes")),
            link(f"{base}/catalog", "describedby", JSON_LD, t(lang, "catalog")),
            link(f"{base}/health", "health", JSON, t(lang, "health")),
            link(f"{base}/ready", "ready", JSON, t(lang, "ready")),
        ],
    }
    if asked.format == "html":
        return html.render("landing.html", {"doc": doc, "base": base, "links": []}, lang=lang, public=True)
    return json_response(doc, public=True, lang=lang)


@router.get("/conformance", summary="Conformance classes", response_class=Response)
async def conformance_classes(request: Request) -> Response:
    """The OGC conformance classes this server implements."""
    asked = negotiate(request)
    doc = {"conformsTo": conformance()}
    if asked.format == "html":
        return html.render(
            "conformance.html",
            {"doc": doc, "base": base_url(request), "links": self_links(request, asked.lang)},
            lang=asked.lang,
            public=True,
        )
    return json_response(doc, public=True, lang=asked.lang)
