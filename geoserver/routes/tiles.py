"""Vector tiles: OGC API - Tiles per collection, composite XYZ tiles, TileJSON, tile matrix sets."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, Request, Response
from psycopg import AsyncConnection

from geoserver.auth import PrincipalDep
from geoserver.media import JSON, MVT
from geoserver.negotiation import accepts_gzip, none_match
from geoserver.responses import PRIVATE, PUBLIC_MAX_AGE_S, base_url, json_response
from geoserver.sharedcache import tile_keys
from geoserver.state import AppState, StateDep
from layers.catalogue.records import Layer
from layers.catalogue.visibility import Principal
from layers.errors import InvalidParameter
from tiles import grids
from tiles.service import TileResult, get_tile
from tiles.tilejson import tilejson

router = APIRouter(tags=["tiles"])
TILE_SUFFIXES = (".pbf", ".mvt")


def privacy_headers(public: bool) -> dict[str, str]:
    """Shared caches may keep public answers; anything non-public is for this caller only."""
    if public:
        return {"Cache-Control": f"public, max-age={PUBLIC_MAX_AGE_S}"}
    return {"Cache-Control": PRIVATE, "Vary": "Authorization"}


def resolve_layers(state: AppState, principal: Principal, names: str) -> list[Layer]:
    """A comma-separated layer list, de-duplicated in order, capped, each resolved for the caller (404 if not)."""
    cap = state.settings.max_composite_layers
    return state.registry.resolve_many(names.split(","), principal, cap=cap, parameter="layers")


def tile_response(request: Request, result: TileResult) -> Response:
    """The tile with gzip when accepted, a strong ETag per encoding, 304 when the client has it, 204 when empty."""
    gzip = accepts_gzip(request.headers.get("accept-encoding")) and bool(result.tile.raw)
    etag = result.tile.etag[:-1] + '-gz"' if gzip else result.tile.etag
    headers = {
        **privacy_headers(result.public),
        "ETag": etag,
        "X-Tile-Cache": "hit" if result.cache_hit else "miss",
    }
    headers["Vary"] = ", ".join(v for v in (headers.get("Vary"), "Accept-Encoding") if v)
    if none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if not result.tile.raw:
        return Response(status_code=204, headers=headers)
    if gzip:
        headers["Content-Encoding"] = "gzip"
        return Response(result.tile.gz, media_type=MVT, headers=headers)
    return Response(result.tile.raw, media_type=MVT, headers=headers)


async def _serve(
    state: AppState, request: Request, principal: Principal, layers: list[Layer], tile: grids.TileXYZ
) -> Response:
    ids = [layer.id for layer in layers]
    anonymous = principal.is_anonymous

    def connection() -> AbstractAsyncContextManager[AsyncConnection[Any]]:
        return state.db.read(ids, anonymous=anonymous)  # a replica that has replayed these layers' changes

    result = await get_tile(connection, state.tiles, state.tile_cache, layers, tile)
    response = tile_response(request, result)
    if result.public:
        response.headers["Surrogate-Key"] = " ".join(tile_keys(ids, tile))
    return response


@router.get("/tiles/{layers}/{z}/{x}/{y_file}", summary="Composite vector tile (XYZ)", response_class=Response)
async def composite_tile(
    layers: str, z: str, x: str, y_file: str, request: Request, state: StateDep, principal: PrincipalDep
) -> Response:
    """One MVT with one layer per catalogue layer named in the comma-separated list."""
    suffix = next((s for s in TILE_SUFFIXES if y_file.endswith(s)), None)
    if suffix is None:
        raise InvalidParameter("a tile URL ends in .pbf or .mvt", parameter="y")
    tile = grids.tile(
        grids.DEFAULT_TMS,
        grids.parse_int(z, "z"),
        grids.parse_int(x, "x"),
        grids.parse_int(y_file.removesuffix(suffix), "y"),
    )
    return await _serve(state, request, principal, resolve_layers(state, principal, layers), tile)


@router.get("/tiles/{layers_json}", summary="TileJSON 3.0 for one or more layers")
async def composite_tilejson(
    layers_json: str, request: Request, state: StateDep, principal: PrincipalDep, lang: str = "en"
) -> Response:
    """TileJSON describing the composite tiles of the comma-separated layer list."""
    if not layers_json.endswith(".json"):
        raise InvalidParameter("TileJSON is at /tiles/{layers}.json", parameter="layers")
    layers = resolve_layers(state, principal, layers_json.removesuffix(".json"))
    doc = tilejson(layers, state.tiles, base_url(request), lang)
    return json_response(doc, public=all(layer.is_public for layer in layers))


@router.get("/tileMatrixSets", summary="The tile matrix sets this server uses")
async def tile_matrix_sets(request: Request) -> dict[str, Any]:
    """The list of tiling schemes."""
    base = base_url(request)
    return {
        "tileMatrixSets": [
            {
                "id": tms_id,
                "title": grids.get_tms(tms_id).title or tms_id,
                "uri": str(grids.get_tms(tms_id).uri),
                "links": [{"rel": "self", "href": f"{base}/tileMatrixSets/{tms_id}", "type": JSON}],
            }
            for tms_id in grids.SUPPORTED_TMS
        ]
    }


@router.get("/tileMatrixSets/{tms_id}", summary="One tile matrix set")
async def tile_matrix_set(tms_id: str, request: Request) -> dict[str, Any]:
    """The tiling scheme's definition (OGC Two Dimensional Tile Matrix Set 2.0)."""
    tms = grids.get_tms(tms_id)
    doc: dict[str, Any] = tms.model_dump(mode="json", exclude_none=True)
    doc["links"] = [{"rel": "self", "href": f"{base_url(request)}/tileMatrixSets/{tms_id}", "type": JSON}]
    return doc


def _tileset(layer: Layer, tms_id: str, base: str) -> dict[str, Any]:
    tms = grids.get_tms(tms_id)
    root = f"{base}/collections/{layer.id}/tiles/{tms_id}"
    return {
        "title": layer.title_in("en"),
        "dataType": "vector",
        "crs": str(tms.crs.root if hasattr(tms.crs, "root") else tms.crs),
        "tileMatrixSetURI": str(tms.uri),
        "links": [
            {"rel": "self", "href": root, "type": JSON},
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
                "href": f"{base}/tileMatrixSets/{tms_id}",
                "type": JSON,
            },
            {
                "rel": "item",
                "href": root + "/{tileMatrix}/{tileRow}/{tileCol}",
                "templated": True,
                "type": MVT,
            },
        ],
    }


@router.get("/collections/{collection_id}/tiles", summary="Vector tilesets of a collection")
async def collection_tilesets(
    collection_id: str, request: Request, state: StateDep, principal: PrincipalDep
) -> Response:
    """The tilesets of one collection (one per tile matrix set)."""
    layer = state.registry.resolve(collection_id, principal)
    base = base_url(request)
    doc = {
        "tilesets": [_tileset(layer, tms_id, base) for tms_id in grids.SUPPORTED_TMS],
        "links": [{"rel": "self", "href": f"{base}/collections/{layer.id}/tiles", "type": JSON}],
    }
    return json_response(doc, public=layer.is_public)


@router.get("/collections/{collection_id}/tiles/{tms_id}", summary="One vector tileset of a collection")
async def collection_tileset(
    collection_id: str, tms_id: str, request: Request, state: StateDep, principal: PrincipalDep
) -> Response:
    """A tileset's metadata, with its templated tile link."""
    layer = state.registry.resolve(collection_id, principal)
    doc = _tileset(layer, tms_id, base_url(request))
    doc["layers"] = [
        {**state.tiles.get(layer.id).vector_layer(), "dataType": "vector", "geometryType": layer.geometry_type}
    ]
    return json_response(doc, public=layer.is_public)


@router.get(
    "/collections/{collection_id}/tiles/{tms_id}/{tile_matrix}/{tile_row}/{tile_col}",
    summary="A vector tile of a collection (OGC order: zoom/row/column)",
    response_class=Response,
)
async def collection_tile(
    collection_id: str,
    tms_id: str,
    tile_matrix: str,
    tile_row: str,
    tile_col: str,
    request: Request,
    state: StateDep,
    principal: PrincipalDep,
) -> Response:
    """One MVT of one collection."""
    layer = state.registry.resolve(collection_id, principal)
    grids.get_tms(tms_id)
    tile = grids.tile(
        tms_id,
        grids.parse_int(tile_matrix, "tileMatrix"),
        grids.parse_int(tile_col, "tileCol"),
        grids.parse_int(tile_row, "tileRow"),
    )
    return await _serve(state, request, principal, [layer], tile)
