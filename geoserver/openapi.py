"""The API definition as OpenAPI 3.0 (what `oas30` conformance promises and GDAL, OWSLib and ArcGIS read).

FastAPI writes OpenAPI 3.1; `downgrade` rewrites the few 3.1-only constructs it uses. The items endpoints parse their
query strings themselves (unknown names are refused), so their parameters are declared here, once, under
`components.parameters`, where clients look for the `limit` maximum.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi

from geoserver.i18n import MAP_LANGUAGES
from geoserver.media import GEOJSON, HTML, OPENAPI_JSON
from geoserver.state import StateDep
from layers.catalogue.records import Layer
from layers.catalogue.visibility import ANONYMOUS
from layers.limits import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_NEARBY_LAYERS,
    MAX_OFFSET,
    MAX_RADIUS_M,
    MIN_RADIUS_M,
    NEARBY_DEFAULT_LIMIT,
    NEARBY_MAX_LIMIT,
    SEARCH_DEFAULT_LIMIT,
    SEARCH_MAX_CHARS,
    SEARCH_MAX_LIMIT,
    SEARCH_MAX_WORDS,
    SEARCH_MIN_CHARS,
)
from layers.queries import crs as crs_mod

ITEMS_PATH = "/collections/{collectionId}/items"
ITEM_PATH = "/collections/{collectionId}/items/{featureId}"
_CRS_ENUM = [c.uri for c in crs_mod.SUPPORTED]
_CRS_SCHEMA = {"type": "string", "format": "uri", "enum": _CRS_ENUM}
_SCHEMA_TYPES = {"integer": "integer", "number": "number", "string": "string", "boolean": "boolean"}


def _query(name: str, description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema, **extra}


PARAMETERS: dict[str, dict[str, Any]] = {
    "collectionId": {
        "name": "collectionId", "in": "path", "required": True, "description": "The collection (layer) id.",
        "schema": {"type": "string"},
    },
    "featureId": {
        "name": "featureId", "in": "path", "required": True, "description": "The feature id.",
        "schema": {"type": "string"},
    },
    "limit": _query(
        "limit", f"At most this many features (values above {MAX_LIMIT} are clamped to {MAX_LIMIT}).",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}, style="form", explode=False,
    ),
    "offset": _query(
        "offset", "Skip this many features (the `next` link does it for you).",
        {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
    ),
    "cursor": _query(
        "cursor", "Opaque cursor from a `next` link (the page after the previous one's last feature, by id); "
        "instead of offset, with the other parameters unchanged.", {"type": "string"},
    ),
    "bbox": _query(
        "bbox", "Features intersecting this box: minx,miny,maxx,maxy (or 6 numbers with heights), in bbox-crs.",
        {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}}, style="form", explode=False,
    ),
    "bbox-crs": _query("bbox-crs", "The CRS of bbox (default CRS84).", _CRS_SCHEMA),
    "crs": _query("crs", "The CRS of the returned geometries (default CRS84).", _CRS_SCHEMA),
    "datetime": _query(
        "datetime", "An RFC 3339 instant or interval (`start/end`, `..` for an open end), matched against the "
        "collection's time fields.", {"type": "string"}, style="form", explode=False,
    ),
    "filter": _query("filter", "A CQL2 filter over the queryables.", {"type": "string"}),
    "filter-lang": _query(
        "filter-lang", "The language of filter.",
        {"type": "string", "enum": ["cql2-text", "cql2-json"], "default": "cql2-text"},
    ),
    "filter-crs": _query("filter-crs", "The CRS of geometries in filter.", _CRS_SCHEMA),
    "sortby": _query(
        "sortby", "Comma-separated queryables, each with an optional + or - prefix; `distance` with near.",
        {"type": "array", "items": {"type": "string"}}, style="form", explode=False,
    ),
    "near": _query(
        "near", "<lon>,<lat> (CRS84): only features within radius metres, sorted by distance (each gets distance_m).",
        {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}}, style="form", explode=False,
    ),
    "radius": _query(
        "radius", "Metres around near.",
        {"type": "number", "minimum": MIN_RADIUS_M, "maximum": MAX_RADIUS_M},
    ),
    "properties": _query(
        "properties", "Only these queryables in each feature (comma-separated).",
        {"type": "array", "items": {"type": "string"}}, style="form", explode=False,
    ),
    "skipGeometry": _query("skipGeometry", "Leave the geometries out.", {"type": "boolean", "default": False}),
    "f": _query("f", "The response format.", {"type": "string", "enum": ["json", "html"]}),
    "lang": _query("lang", "The response language.", {"type": "string", "enum": ["en", "fr"]}),
}  # fmt: skip
_POINT = {
    "lon": _query(
        "lon",
        "Longitude of the point, WGS 84 degrees.",
        {"type": "number", "minimum": -180, "maximum": 180},
        required=True,
    ),
    "lat": _query(
        "lat",
        "Latitude of the point, WGS 84 degrees.",
        {"type": "number", "minimum": -90, "maximum": 90},
        required=True,
    ),
}
NEARBY_PARAMETERS: list[dict[str, Any]] = [
    *_POINT.values(),
    _query("radius", "Search radius in metres (geodesic); without it, the nearest `limit`.",
           {"type": "number", "minimum": MIN_RADIUS_M, "maximum": MAX_RADIUS_M}),
    _query("layers", f"Comma-separated layer ids (at most {MAX_NEARBY_LAYERS}); default: the visible layers that "
           "serve people (facilities, events, community overlays), not boundaries (see /here).",
           {"type": "string", "maxLength": 2000}),
    _query("category", "Comma-separated feature categories (e.g. library,fire_station); only layers with categories.",
           {"type": "string", "maxLength": 2000}),
    _query("open_now", "true: only features open at `at` (layers with opening hours). false: no filter.",
           {"type": "boolean", "default": False}),
    _query("at", "RFC 3339 instant with an offset, for hours and events; default now.",
           {"type": "string", "format": "date-time"}),
    _query("limit", f"Features per page, 1 to {NEARBY_MAX_LIMIT}; above it 400.",
           {"type": "integer", "minimum": 1, "maximum": NEARBY_MAX_LIMIT, "default": NEARBY_DEFAULT_LIMIT}),
    _query("cursor", "Opaque cursor from a `next` link; give the other parameters too.", {"type": "string"}),
]  # fmt: skip
SEARCH_PARAMETERS: list[dict[str, Any]] = [
    _query("q", f"Words of a name or an address, {SEARCH_MIN_CHARS} to {SEARCH_MAX_CHARS} characters, at most "
           f"{SEARCH_MAX_WORDS} words; each must appear in the feature's searchable text.",
           {"type": "string", "minLength": SEARCH_MIN_CHARS, "maxLength": SEARCH_MAX_CHARS}, required=True),
    _query("lon", "Longitude of a point (with lat): the nearest matches first.",
           {"type": "number", "minimum": -180, "maximum": 180}),
    _query("lat", "Latitude of a point (with lon).", {"type": "number", "minimum": -90, "maximum": 90}),
    _query("limit", f"Features, 1 to {SEARCH_MAX_LIMIT}; above it 400.",
           {"type": "integer", "minimum": 1, "maximum": SEARCH_MAX_LIMIT, "default": SEARCH_DEFAULT_LIMIT}),
    _query("lang", "The language of `layer_title` (default: Accept-Language, then English).",
           {"type": "string", "enum": list(MAP_LANGUAGES)}),
]  # fmt: skip
ITEMS_PARAMETERS = [
    "collectionId", "limit", "offset", "bbox", "bbox-crs", "datetime", "crs", "filter", "filter-lang", "filter-crs",
    "sortby", "near", "radius", "properties", "skipGeometry", "cursor", "f", "lang",
]  # fmt: skip


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def _feature_responses(description: str) -> dict[str, Any]:
    return {
        "200": {
            "description": description,
            "content": {
                GEOJSON: {"schema": {"type": "object"}},
                HTML: {"schema": {"type": "string"}},
            },
        },
        "400": {"description": "A parameter is malformed, unknown or out of range."},
        "404": {"description": "No such collection or feature."},
    }


def downgrade(node: Any) -> Any:
    """Rewrite an OpenAPI 3.1 (JSON Schema 2020-12) tree into OpenAPI 3.0 terms."""
    if isinstance(node, list):
        return [downgrade(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: downgrade(value) for key, value in node.items()}
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            del out[key]
            if len(rest) == 1:
                out.update({k: v for k, v in rest[0].items() if k not in out})
            else:
                out[key] = rest
            out["nullable"] = True
    if isinstance(out.get("type"), list):
        types = [t for t in out["type"] if t != "null"]
        if len(types) < len(out["type"]):
            out["nullable"] = True
        out["type"] = types[0] if len(types) == 1 else "string"
    if isinstance(out.get("examples"), list):
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    if "const" in out:
        out["enum"] = [out.pop("const")]
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), int | float) and not isinstance(out.get(bound), bool):
            out[limit] = out[bound]
            out[bound] = True
    for key in ("contentMediaType", "contentEncoding", "$schema", "$id", "unevaluatedProperties"):
        out.pop(key, None)
    if "prefixItems" in out:
        items = out.pop("prefixItems")
        out.setdefault("minItems", len(items))
        out.setdefault("maxItems", len(items))
        out["items"] = items[0] if len(items) == 1 else {}
    return out


def base_document(app: FastAPI) -> dict[str, Any]:
    """The 3.0 document of every route, built once per app."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        doc = downgrade(doc)
        doc["openapi"] = "3.0.3"
        for key in ("webhooks", "jsonSchemaDialect"):
            doc.pop(key, None)
        doc.setdefault("info", {}).pop("summary", None)
        components = doc.setdefault("components", {})
        components["parameters"] = PARAMETERS
        for path, params, what in (
            (ITEMS_PATH, ITEMS_PARAMETERS, "The features of the collection (GeoJSON)."),
            (ITEM_PATH, ["collectionId", "featureId", "crs", "f", "lang"], "One feature (GeoJSON)."),
        ):
            operation = doc.setdefault("paths", {}).setdefault(path, {}).setdefault("get", {})
            operation["parameters"] = [_ref(name) for name in params]
            operation["responses"] = _feature_responses(what)
        for path, declared in (
            ("/nearby", NEARBY_PARAMETERS),
            ("/here", list(_POINT.values())),
            ("/search", SEARCH_PARAMETERS),
        ):
            operation = doc["paths"][path]["get"]
            operation["parameters"] = declared
            operation["responses"]["400"] = {
                "description": "A parameter is missing, malformed, out of range or unknown."
            }
        app.openapi_schema = doc
    return app.openapi_schema


def layer_paths(layers: list[Layer]) -> dict[str, Any]:
    """One items path per public layer, with its queryable properties as `property=value` parameters."""
    paths: dict[str, Any] = {}
    for layer in layers:
        props = []
        for item in layer.fields:
            kind = _SCHEMA_TYPES.get(item.kind)
            if kind is None and item.kind not in ("datetime", "date"):
                continue
            schema = {"type": kind or "string"}
            if item.kind in ("datetime", "date"):
                schema["format"] = "date-time" if item.kind == "datetime" else "date"
            props.append(_query(item.name, f"Only features whose {item.name} equals this value.", schema))
        params = [_ref(name) for name in ITEMS_PARAMETERS if name != "collectionId"]
        # Percent-encoded: an id with braces or spaces must not read as a path template.
        paths[f"/collections/{quote(layer.id, safe='')}/items"] = {
            "get": {
                "summary": f"The features of {layer.title_in('en')}",
                "operationId": f"getFeatures_{layer.id}",
                "tags": ["features"],
                "parameters": params + props,
                "responses": _feature_responses(f"The features of {layer.title_in('en')}."),
            }
        }
    return paths


def install(app: FastAPI) -> None:
    """Serve the 3.0 document at /openapi.json and /api (replacing FastAPI's 3.1 one) and for the docs page."""
    app.router.routes = [r for r in app.router.routes if getattr(r, "path", None) != app.openapi_url]

    def openapi() -> dict[str, Any]:
        return base_document(app)

    app.openapi = openapi  # type: ignore[method-assign]

    async def api(request: Request, state: StateDep) -> Response:
        import orjson

        doc = copy.copy(base_document(app))
        doc["paths"] = {**doc["paths"], **layer_paths([layer for layer in state.registry.visible(ANONYMOUS)])}
        base = str(request.base_url).rstrip("/")
        doc["servers"] = [{"url": base}]
        return Response(
            orjson.dumps(doc),
            media_type=OPENAPI_JSON,
            headers={"Cache-Control": "public, max-age=60", "Vary": "Accept-Language"},
        )

    for path in ("/openapi.json", "/api"):
        app.add_api_route(path, api, methods=["GET"], include_in_schema=False, response_class=Response)
