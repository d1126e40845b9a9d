"""Collections: the layers a caller may see, each described for OGC API Features clients; and their queryables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from geoserver import html, i18n
from geoserver.auth import PrincipalDep
from geoserver.media import GEOJSON, HTML, JSON, JSON_LD, SCHEMA_JSON
from geoserver.responses import base_url, json_response, link, negotiate, self_links
from geoserver.state import StateDep
from layers.catalogue.fieldtypes import JSON_SCHEMA
from layers.catalogue.records import Layer
from layers.queries import crs as crs_mod
from layers.queries.cql import GEOMETRY_PROPERTY
from layers.queries.downloads import DOWNLOADS
from layers.queries.times import iso

router = APIRouter(tags=["collections"])
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
TILESETS_REL = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"
GREGORIAN = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"
_GEOMETRY_FORMATS = {
    "Point": "geometry-point", "MultiPoint": "geometry-multipoint", "LineString": "geometry-linestring",
    "MultiLineString": "geometry-multilinestring", "Polygon": "geometry-polygon",
    "MultiPolygon": "geometry-multipolygon",
}  # fmt: skip


def collection_url(base: str, layer: Layer) -> str:
    """The URL of a collection (layer ids may hold spaces, quotes and other characters)."""
    return f"{base}/collections/{quote(layer.id, safe='')}"


def _in(texts: Mapping[str, str] | None, lang: str) -> str:
    """A field description in `lang`, English when it has none in that language."""
    return (texts or {}).get(lang) or (texts or {}).get("en") or ""


def _iso(value: Any) -> str | None:
    return iso(value) if value is not None else None


def collection_document(layer: Layer, base: str, lang: str) -> dict[str, Any]:
    """One collection as `/collections` and `/collections/{id}` describe it."""
    url = collection_url(base, layer)
    t = i18n.text
    links = [
        link(url, "self", JSON, layer.title_in(lang)),
        link(f"{url}?f=html", "alternate", HTML, t(lang, "as_html")),
        link(f"{url}/items", "items", GEOJSON, t(lang, "items")),
        link(f"{url}/items?f=html", "items", HTML, t(lang, "items")),
        link(f"{url}/queryables", QUERYABLES_REL, SCHEMA_JSON, t(lang, "queryables")),
        link(f"{url}/tiles", TILESETS_REL, JSON, t(lang, "tiles")),
    ]
    if layer.license_url:
        links.append(link(layer.license_url, "license", HTML, layer.license_name))
    for download in DOWNLOADS:
        name, href = download.name, f"{url}/download.{download.suffix}"
        links.append(link(href, "enclosure", download.media_type, f"{t(lang, 'download')} ({name})"))
    doc: dict[str, Any] = {
        "id": layer.id,
        "title": layer.title_in(lang),
        "description": layer.description_in(lang),
        # Said the way OGC API - Records does: the language of this title and description (English when the
        # manifest gave no French), and every language the layer's metadata exists in.
        "language": {"code": lang if lang in layer.languages else "en"},
        "languages": [{"code": code} for code in layer.languages],
        "keywords": list(layer.keywords),
        "itemType": "feature",
        "crs": [c.uri for c in crs_mod.SUPPORTED],
        "storageCrs": crs_mod.STORAGE.uri,
        "extent": {},
        "license": layer.license_name,
        "licenseUrl": layer.license_url,
        "department": layer.department,
        "publisher": layer.publisher,
        "community": layer.is_community,
        "visibility": layer.visibility,
        "updateFrequency": layer.update_frequency,
        "updated": _iso(layer.updated_at),
        "featureCount": layer.feature_count,
        "geometryType": layer.geometry_type,
        "links": links,
    }
    if layer.bbox is not None:
        doc["extent"]["spatial"] = {"bbox": [list(layer.bbox)], "crs": crs_mod.CRS84.uri}
    if layer.time_start_field is not None:
        doc["extent"]["temporal"] = {
            "interval": [[_iso(layer.temporal_start), _iso(layer.temporal_end)]],
            "trs": GREGORIAN,
        }
    return doc


@router.get("/collections", summary="The collections the caller may see", response_class=Response)
async def collections(request: Request, state: StateDep, principal: PrincipalDep) -> Response:
    """Every visible layer as a collection."""
    asked = negotiate(request)
    base, lang = base_url(request), asked.lang
    layers = state.registry.visible(principal)
    public = all(layer.is_public for layer in layers)
    doc = {
        "links": [
            *self_links(request, lang),
            link(f"{base}/catalog", "describedby", JSON_LD, i18n.text(lang, "catalog")),
        ],
        "collections": [collection_document(layer, base, lang) for layer in layers],
        "crs": [c.uri for c in crs_mod.SUPPORTED],
    }
    if asked.format == "html":
        return html.render(
            "collections.html", {"doc": doc, "base": base, "links": doc["links"]}, lang=lang, public=public
        )
    return json_response(doc, public=public, lang=lang)


@router.get("/collections/{collectionId}", summary="One collection", response_class=Response)
async def collection(collectionId: str, request: Request, state: StateDep, principal: PrincipalDep) -> Response:  # noqa: N803
    """One visible layer as a collection; 404 as for a missing one when the caller may not see it."""
    layer = state.registry.resolve(collectionId, principal)
    asked = negotiate(request)
    base, lang = base_url(request), asked.lang
    doc = collection_document(layer, base, lang)
    if asked.format == "html":
        fields = [{"name": f.name, "description": _in(f.description, lang)} for f in layer.fields]
        context = {"doc": doc, "base": base, "fields": fields, "links": doc["links"][:2]}
        return html.render("collection.html", context, lang=lang, public=layer.is_public)
    return json_response(doc, public=layer.is_public, lang=lang)


@router.get("/collections/{collectionId}/queryables", summary="Queryable properties", response_class=Response)
async def queryables(collectionId: str, request: Request, state: StateDep, principal: PrincipalDep) -> Response:  # noqa: N803
    """The public fields as a JSON Schema (2020-12): the only names filters and sortby accept."""
    layer = state.registry.resolve(collectionId, principal)
    asked = negotiate(request, html=False)
    url = collection_url(base_url(request), layer)
    properties: dict[str, Any] = {
        GEOMETRY_PROPERTY: {
            "format": _GEOMETRY_FORMATS.get(layer.geometry_type, "geometry-any"),
            "x-ogc-role": "primary-geometry",
        }
    }
    for item in layer.fields:
        schema: dict[str, Any] = {"title": item.name, **JSON_SCHEMA[item.kind]}
        description = _in(item.description, asked.lang)
        if description:
            schema["description"] = description
        if item.name == layer.id_column:
            schema["x-ogc-role"] = "id"
        if item.name in (layer.time_start_field, layer.time_end_field):
            schema["x-ogc-role"] = (
                "primary-instant"
                if layer.time_end_field is None
                else ("primary-interval-start" if item.name == layer.time_start_field else "primary-interval-end")
            )
        properties[item.name] = schema
    doc = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{url}/queryables",
        "type": "object",
        "title": layer.title_in(asked.lang),
        "properties": properties,
        "additionalProperties": False,
    }
    return json_response(doc, public=layer.is_public, lang=asked.lang, media_type=SCHEMA_JSON)
