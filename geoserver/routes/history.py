"""Every version kept: a feature's versions, one version, restoring one; a layer's whole history; the audit log.

Anyone who sees a layer sees its features' versions (public fields only); who made each is shown to the owner group
and City staff. Restoring is an edit. A layer's whole history is for its group and City staff; the audit log is for
City staff.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Request, Response

from geoserver import params
from geoserver.auth import PrincipalDep, SignedInDep, StaffDep
from geoserver.database import Workload
from geoserver.media import GEOJSON
from geoserver.responses import PRIVATE, HeldStream, base_url, json_response, negotiate
from geoserver.routes.collections import collection_url
from geoserver.routes.edits import _fid, editable_layer, stored, who
from geoserver.state import StateDep
from layers.catalogue.journal import list_audit
from layers.catalogue.records import Layer
from layers.catalogue.visibility import VIEWER, Principal
from layers.edits import versions
from layers.errors import Forbidden, InvalidParameter, NotFound
from layers.queries.times import iso, parse_timestamp

router = APIRouter(tags=["history"])
AUDIT_FILTERS = ("layer", "group", "subject", "since", "until", "limit", "offset")
MAX_AUDIT = 1_000


def _no_parameters(request: Request) -> None:
    """These answers are JSON and take no other query parameter: one sent is a mistake to report, not to ignore."""
    negotiate(request, allowed=("f",), html=False)


def _may_see_who(principal: Principal, layer: Layer) -> bool:
    """Who made a version (a person's subject) is for the owner group and City staff, not for everyone."""
    return principal.is_staff or (layer.group_id is not None and layer.group_id in principal.roles)


def _version_document(v: versions.Version, href: str, show_actor: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {"version": v.version, "op": v.op, "deleted": v.deleted, "at": iso(v.at),
                           "links": [{"rel": "self", "href": f"{href}/{v.version}", "type": GEOJSON}]}  # fmt: skip
    if show_actor:
        doc["actor"] = v.actor
    return doc


@router.get("/collections/{collection_id}/items/{feature_id}/versions", summary="A feature's versions")
async def list_versions(
    collection_id: str, feature_id: str, request: Request, state: StateDep, principal: PrincipalDep
) -> Response:
    """Numbered from 1 (the feature as first stored); a deleted feature's versions stay, ending with the deletion."""
    _no_parameters(request)
    layer = state.registry.resolve(collection_id, principal)
    fid = _fid(layer, feature_id)
    async with state.db.connection() as conn:
        found = await versions.versions(conn, layer, fid)
    href = f"{collection_url(base_url(request), layer)}/items/{quote(str(fid), safe='')}/versions"
    body = {"id": fid, "versions": [_version_document(v, href, _may_see_who(principal, layer)) for v in found]}
    return json_response(body, public=False)


@router.get("/collections/{collection_id}/items/{feature_id}/versions/{number}", summary="One version of a feature")
async def get_version(
    collection_id: str, feature_id: str, number: str, request: Request, state: StateDep, principal: PrincipalDep
) -> Response:
    """The feature as it was at that version (public fields), with the version's number, operation and time."""
    _no_parameters(request)
    layer = state.registry.resolve(collection_id, principal)
    fid, n = _fid(layer, feature_id), params.integer(number, "version")
    async with state.db.connection() as conn:
        found = await versions.version(conn, layer, fid, n)
        if found is None and n == 1 and (current := await versions.versions(conn, layer, fid)) and len(current) == 1:
            return await _as_loaded(state, conn, layer, fid)
    if found is None:
        raise NotFound(f"no version {n} of this feature", parameter="version")
    text, meta = found
    extra: dict[str, Any] = {"version": meta.version, "op": meta.op, "deleted": meta.deleted, "at": iso(meta.at)}
    if _may_see_who(principal, layer):
        extra["actor"] = meta.actor
    body = text[:-1].encode() + b',"version":' + orjson.dumps(extra) + b"}"
    return Response(body, media_type=GEOJSON, headers={"Cache-Control": PRIVATE, "Vary": "Authorization"})


async def _as_loaded(state: Any, conn: Any, layer: Layer, fid: Any) -> Response:
    from layers.queries import crs as crs_mod
    from layers.queries import features

    found = await features.fetch_feature(conn, layer, fid, crs_mod.CRS84)
    if found is None:
        raise NotFound("no such feature", parameter="featureId")
    body = found[0][:-1].encode() + b',"version":{"version":1,"op":"load","deleted":false}}'
    return Response(body, media_type=GEOJSON, headers={"Cache-Control": PRIVATE, "Vary": "Authorization"})


@router.post("/collections/{collection_id}/items/{feature_id}/versions/{number}/restore",
             summary="Make a version current again (a new version)")  # fmt: skip
async def restore_version(
    collection_id: str, feature_id: str, number: str, request: Request, state: StateDep, principal: PrincipalDep
) -> Response:
    """An edit: the version's state becomes the newest version (a deleted feature comes back); If-Match honoured."""
    layer = editable_layer(state, principal, collection_id)
    fid, n = _fid(layer, feature_id), params.integer(number, "version")
    writer = who(request, principal)
    async with state.db.connection(Workload.WRITES) as conn, conn.transaction():
        await versions.restore(conn, layer, fid, n, if_match=request.headers.get("if-match"), who=writer)
        response = await stored(state, conn, layer, fid, request)
    response.headers["X-Request-Id"] = writer.request_id
    return response


@router.get("/collections/{collection_id}/history", summary="A layer's whole history (its group and City staff)")
async def layer_history(collection_id: str, request: Request, state: StateDep, principal: SignedInDep) -> Response:
    """Every version of every feature written through the API, oldest first, as a GeoJSON FeatureCollection."""
    _no_parameters(request)
    layer = state.registry.resolve(collection_id, principal)
    if not (principal.is_staff or principal.has_role(layer.group_id, VIEWER)):
        raise Forbidden("a layer's history is for its group and City staff")

    held = AsyncExitStack()  # a busy pool is a JSON 503 before the answer starts, not a cut-off stream
    conn = await held.enter_async_context(state.db.connection())

    async def body() -> AsyncIterator[bytes]:
        yield b'{"type":"FeatureCollection","name":' + orjson.dumps(layer.id) + b',"features":['
        first = True
        async for feature in versions.history(conn, layer):
            yield (b"" if first else b",") + feature.encode()
            first = False
        yield b"]}"

    headers = {"Cache-Control": PRIVATE, "Vary": "Authorization"}
    return HeldStream(body(), held=held, media_type=GEOJSON, headers=headers)


@router.get("/audit", summary="Who did what, across layers (City staff)")
async def audit(request: Request, state: StateDep, principal: StaffDep) -> Response:
    """Filters: layer, group, subject, since, until (RFC 3339); limit (1-1000, default 100), offset; newest first."""
    values = params.single_values(request.query_params.multi_items())
    params.check_known(values, AUDIT_FILTERS)
    limit = params.integer(values.get("limit", "100"), "limit")
    offset = params.integer(values.get("offset", "0"), "offset")
    if not 1 <= limit <= MAX_AUDIT or offset < 0:
        raise InvalidParameter(f"limit is 1 to {MAX_AUDIT}, offset 0 or more", parameter="limit")
    since, until = (_instant(values.get(name), name) for name in ("since", "until"))
    async with state.db.connection() as conn:
        filters = {"layer": values.get("layer"), "group": values.get("group"), "actor": values.get("subject")}
        entries = await list_audit(conn, **filters, since=since, until=until, limit=limit, offset=offset)
    return json_response({"entries": entries, "numberReturned": len(entries)}, public=False)


def _instant(value: str | None, name: str) -> datetime | None:
    return parse_timestamp(value, parameter=name) if value is not None else None
