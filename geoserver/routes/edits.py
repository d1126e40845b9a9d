"""OGC API Features Part 4 on the layers the caller may edit: create, replace, update (merge-patch), delete; OPTIONS;
and the layer's editable schema. Parse, check who may, call `layers.edits`, answer the stored feature with its ETag.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from geoserver.auth import Caller, CallerDep, PrincipalDep, confirmed
from geoserver.bodies import JsonOnce, read_json
from geoserver.database import Workload
from geoserver.media import GEOJSON, SCHEMA_JSON
from geoserver.responses import PRIVATE, base_url, json_response
from geoserver.routes.collections import collection_url
from geoserver.sharedcache import WRITTEN_XACT
from geoserver.state import AppState, StateDep
from layers.catalogue.records import IN_PLACE, Layer
from layers.catalogue.visibility import Principal
from layers.edits import change, creates, writes
from layers.edits.schema import CheckedFeature, check_feature, json_schema
from layers.errors import Forbidden, InvalidParameter, NotAllowed, NotFound, TooLarge, Unauthorized
from layers.queries import crs as crs_mod
from layers.queries import features

router = APIRouter(tags=["edits"])
MAX_BATCH = 10_000
READ = ("GET", "HEAD", "OPTIONS")
MERGE_PATCH = "application/merge-patch+json"


def editable_layer(state: AppState, principal: Principal, collection_id: str) -> Layer:
    """The layer a write goes to: 404 unseen, 405 read-only, 401 without a token, 403 when it may only look."""
    layer = state.registry.resolve(collection_id, principal)
    if layer.source_kind == IN_PLACE:
        raise NotAllowed("this layer is published in place from a City table: it is read-only", allowed=READ)
    if principal.is_anonymous:
        raise Unauthorized("sign in to edit: send 'Authorization: Bearer <token>'")
    if not principal.can_edit(layer):
        raise Forbidden("you may read this layer but not edit it")
    return layer


def who(request: Request, principal: Principal) -> writes.Who:
    """The writer and this request's id (returned as X-Request-Id, kept in history and the audit log)."""
    request_id = request.headers.get("x-request-id", "")[:64] or secrets.token_hex(8)
    return writes.Who(str(principal.subject), request_id)


def _crs(request: Request) -> crs_mod.Crs:
    value = request.headers.get("content-crs")
    return crs_mod.parse_crs(value.strip().strip("<>") if value else None, parameter="Content-Crs")


def _fid(layer: Layer, text: str) -> Any:
    fid = features.id_value(layer, text)
    if fid is None:
        raise NotFound(f"no feature {text[:80]!r} in this collection", parameter="featureId")
    return fid


async def stored(state: AppState, conn: Any, layer: Layer, fid: Any, request: Request, status: int = 200) -> Response:
    """The feature as stored now, with its ETag (and Location after a create)."""
    found = await features.fetch_feature(conn, layer, fid, crs_mod.CRS84)
    if found is None:
        raise NotFound("the feature is gone", parameter="featureId")
    text, etag = found
    location = f"{collection_url(base_url(request), layer)}/items/{quote(str(fid), safe='')}"
    headers = {"ETag": etag, "Cache-Control": PRIVATE, "Vary": "Authorization", "Content-Crs": crs_mod.CRS84.header}
    if status == 201:
        headers["Location"] = location
    return Response(text.encode(), status_code=status, media_type=GEOJSON, headers=headers)


def _batch(layer: Layer, body: Any, crs: crs_mod.Crs) -> list[CheckedFeature]:
    if isinstance(body, dict) and body.get("type") == "FeatureCollection":
        items = body.get("features")
        if not isinstance(items, list) or not items:
            raise InvalidParameter("a FeatureCollection needs features", parameter="body")
        if len(items) > MAX_BATCH:
            raise TooLarge(f"at most {MAX_BATCH:,} features in one request", parameter="body")
        return [check_feature(layer, item, crs=crs, where=f"feature {i}") for i, item in enumerate(items)]
    return [check_feature(layer, body, crs=crs)]


@router.post("/collections/{collection_id}/items", summary="Create a feature, or a batch (one transaction)",
             status_code=201)  # fmt: skip
async def create(collection_id: str, request: Request, state: StateDep, principal: PrincipalDep) -> Response:
    """A Feature (201, Location, ETag, the stored feature) or a FeatureCollection, stored whole or not at all."""
    layer = editable_layer(state, principal, collection_id)
    body = await read_json(request)
    batch = _batch(layer, body, _crs(request))
    writer = who(request, principal)
    single = not (isinstance(body, dict) and body.get("type") == "FeatureCollection")
    async with state.db.connection(Workload.WRITES) as conn, conn.transaction():
        written = await creates.create(conn, layer, batch, writer, state.statements)
        if single:
            response = await stored(state, conn, layer, written[0].fid, request, status=201)
            response.headers["X-Request-Id"] = writer.request_id
            return response
    base = collection_url(base_url(request), layer)
    created = [{"id": w.fid, "version": w.version, "etag": w.etag, "href": f"{base}/items/{quote(str(w.fid), safe='')}"}
               for w in written]  # fmt: skip
    answer = {"type": "FeatureCollection", "numberCreated": len(written), "created": created}
    headers = {"X-Request-Id": writer.request_id, "Location": created[0]["href"]}
    return json_response(answer, public=False, status=201, headers=headers)


async def _change(
    collection_id: str, feature_id: str, request: Request, state: AppState, caller: Caller, *, replace: bool
) -> Response:
    """A feature's PUT or PATCH, as the caller the write confirms (`auth.confirmed`: a request may be handled again
    with the token looked up afresh, so the body is read once and kept)."""
    body = JsonOnce(request)

    async def write(as_caller: Caller) -> Response:
        return await _change_as(collection_id, feature_id, request, state, as_caller, body, replace=replace)

    return await confirmed(state, caller, write)


async def _change_as(
    collection_id: str,
    feature_id: str,
    request: Request,
    state: AppState,
    caller: Caller,
    body: JsonOnce,
    *,
    replace: bool,
) -> Response:
    principal = caller.principal
    layer = editable_layer(state, principal, collection_id)
    fid = _fid(layer, feature_id)
    if not replace and request.headers.get("content-type", "").split(";")[0].strip() not in (
        MERGE_PATCH,
        "application/json",
    ):
        raise InvalidParameter(f"send the changes as {MERGE_PATCH}", parameter="Content-Type")
    feature = check_feature(layer, await body.value(), crs=_crs(request), partial=not replace)
    if feature.fid is not None and feature.fid != fid:
        raise InvalidParameter("the id in the body differs from the one in the path: ids never change", parameter="id")
    writer = who(request, principal)
    sets = change.assignments(layer, feature, replace=replace)
    assert caller.standing is not None  # editable_layer refused the anonymous caller
    async with state.db.connection(Workload.WRITES) as conn:  # one statement: its own transaction
        written, text = await change.change(
            conn, layer, fid, sets, state.statements, op="replace" if replace else "update",
            if_match=request.headers.get("if-match"), who=writer, standing=caller.standing,
        )  # fmt: skip
    if written.xact is not None:
        request.scope[WRITTEN_XACT] = written.xact  # answered once this instance acted on the write's own notice
    headers = {"ETag": str(written.etag), "Cache-Control": PRIVATE, "Vary": "Authorization",
               "Content-Crs": crs_mod.CRS84.header, "X-Request-Id": writer.request_id}  # fmt: skip
    return Response(text.encode(), media_type=GEOJSON, headers=headers)


@router.put("/collections/{collection_id}/items/{feature_id}", summary="Replace a feature")
async def replace(
    collection_id: str, feature_id: str, request: Request, state: StateDep, caller: CallerDep
) -> Response:
    """The feature's public properties and geometry become the body's (private ones are kept); If-Match honoured."""
    return await _change(collection_id, feature_id, request, state, caller, replace=True)


@router.patch("/collections/{collection_id}/items/{feature_id}", summary="Update a feature (JSON merge-patch)")
async def update(collection_id: str, feature_id: str, request: Request, state: StateDep, caller: CallerDep) -> Response:
    """Only what the body names changes (null empties a property); the id and the geometry cannot be removed."""
    return await _change(collection_id, feature_id, request, state, caller, replace=False)


@router.delete("/collections/{collection_id}/items/{feature_id}", summary="Delete a feature", status_code=204)
async def delete(
    collection_id: str, feature_id: str, request: Request, state: StateDep, principal: PrincipalDep
) -> Response:
    """The feature goes; its last state stays in history and can be restored."""
    layer = editable_layer(state, principal, collection_id)
    fid = _fid(layer, feature_id)
    writer = who(request, principal)
    async with state.db.connection(Workload.WRITES) as conn, conn.transaction():
        await writes.delete(conn, layer, fid, if_match=request.headers.get("if-match"), who=writer)
    return Response(status_code=204, headers={"X-Request-Id": writer.request_id})


def allowed(state: AppState, principal: Principal, layer: Layer, *, item: bool) -> tuple[str, ...]:
    """The methods this caller may use on the layer's items (or one item)."""
    if layer.source_kind == IN_PLACE or principal.is_anonymous or not principal.can_edit(layer):
        return READ
    return (*READ, *(("PUT", "PATCH", "DELETE") if item else ("POST",)))


@router.options("/collections/{collection_id}/items", summary="What the caller may do with the items")
async def items_options(collection_id: str, state: StateDep, principal: PrincipalDep) -> Response:
    """Allow: the methods for this layer and caller."""
    layer = state.registry.resolve(collection_id, principal)
    return Response(status_code=204, headers={"Allow": ", ".join(allowed(state, principal, layer, item=False))})


@router.options("/collections/{collection_id}/items/{feature_id}", summary="What the caller may do with a feature")
async def item_options(collection_id: str, feature_id: str, state: StateDep, principal: PrincipalDep) -> Response:
    """Allow: the methods for this feature and caller."""
    layer = state.registry.resolve(collection_id, principal)
    return Response(status_code=204, headers={"Allow": ", ".join(allowed(state, principal, layer, item=True))})


@router.get("/collections/{collection_id}/schema", summary="The layer's editable fields (JSON Schema)")
async def schema(collection_id: str, request: Request, state: StateDep, principal: PrincipalDep) -> Response:
    """What POST, PUT and PATCH accept: public fields with their types, the geometry type, the id."""
    layer = state.registry.resolve(collection_id, principal)
    url = f"{collection_url(base_url(request), layer)}/schema"
    return json_response(json_schema(layer, url), public=layer.is_public, media_type=SCHEMA_JSON)
