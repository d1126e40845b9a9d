"""Community overlays: upload (`POST /collections`), new versions (`PUT .../data`), metadata and sharing (`PATCH`),
unpublishing (`DELETE`) and restoring (City staff). Parse, check who may, call `layers/`, answer the layer document.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from geoserver import params
from geoserver.auth import SignedInDep, StaffDep
from geoserver.bodies import json_object
from geoserver.database import Workload
from geoserver.responses import base_url, json_response
from geoserver.routes.collections import collection_document
from geoserver.routes.groups import effective_quotas
from geoserver.state import AppState, StateDep
from geoserver.uploads import FILE_FIELD, Received, received_upload
from layers.access import groups
from layers.catalogue import changes
from layers.catalogue.records import Layer
from layers.catalogue.visibility import EDITOR, Principal
from layers.errors import Conflict, Forbidden, InvalidParameter, LimitReached, NotFound, QuotaExceeded, TooLarge
from layers.ingest.overlays import OverlaySpec, check_overlay_id
from layers.ingest.publish import Job, Upload, publish_in_subprocess
from layers.ingest.register import LoadResult

router = APIRouter(tags=["community overlays"])
_TEXT = {"type": "string"}
_FORM_FIELDS = {
    "file": {"type": "string", "format": "binary",
             "description": "GeoJSON, GeoPackage, zipped Shapefile, KML or CSV with lon/lat columns (by extension)."},
    "id": {**_TEXT, "description": "The layer's id in URLs (not one that exists)."},
    "title": _TEXT, "group": {**_TEXT, "description": "The group that owns it (you must be one of its editors)."},
    "description": _TEXT, "category": {**_TEXT, "description": "e.g. events; default community."},
    "crs": {**_TEXT, "description": "EPSG code for a file that has no CRS of its own, e.g. EPSG:3776."},
    "id_field": _TEXT, "private_fields": {**_TEXT, "description": "Comma-separated fields nobody else sees."},
    "time_start": _TEXT, "time_end": _TEXT, "opening_hours_field": _TEXT,
    "min_zoom": {"type": "integer", "minimum": 0, "maximum": 22},
}  # fmt: skip
_ERRORS = {
    str(code): {"description": text}
    for code, text in ((400, "A form field or the body is malformed or unknown."), (401, "No valid token."),
                       (403, "Your role does not allow this, or a limit is reached."),
                       (404, "No such layer or group (or you may not see it)."), (409, "The id is taken."),
                       (413, "The file is too large, or holds too many features."),
                       (422, "The file cannot be read as a layer (the message says why)."),
                       (429, "Too many uploads this hour (see Retry-After)."))
}  # fmt: skip


def _multipart(*required: str, fields: tuple[str, ...] = tuple(_FORM_FIELDS)) -> dict[str, Any]:
    schema = {"type": "object", "required": list(required), "properties": {n: _FORM_FIELDS[n] for n in fields}}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}},
            "responses": _ERRORS}  # fmt: skip


_MERGE_PATCH = {
    "requestBody": {"required": True, "content": {"application/merge-patch+json": {"schema": {
        "type": "object", "additionalProperties": False, "properties": {
            "title": {}, "description": {}, "category": _TEXT, "min_zoom": {"type": "integer"},
            "max_zoom": {"type": "integer"},
            "visibility": {**_TEXT, "description": "public, group:<gid> or groups:<gid>,<gid>,... (publishers)."}}}}}},
    "responses": _ERRORS,
}  # fmt: skip
log = logging.getLogger("geoserver.overlays")
REQUIRED = ("id", "title", "group")
OPTIONAL = ("description", "category", "crs", "id_field", "private_fields", "time_start", "time_end",
            "opening_hours_field", "min_zoom")  # fmt: skip


def _spec(fields: dict[str, str], group: groups.Group) -> OverlaySpec:
    params.check_known(fields, (*REQUIRED, *OPTIONAL))
    optional = {name: fields[name].strip() or None for name in OPTIONAL if name in fields}
    zoom = params.integer(optional.pop("min_zoom") or "0", "min_zoom") if "min_zoom" in optional else 0
    if not 0 <= zoom <= 22:
        raise InvalidParameter("min_zoom is between 0 and 22", parameter="min_zoom")
    private = params.text_list(optional.pop("private_fields", None), "private_fields", 200) or []
    return OverlaySpec(
        id=check_overlay_id(fields["id"]), title=fields["title"].strip(), group=group.id, group_name=group.name,
        private_fields=tuple(private), min_zoom=zoom, **{k: v for k, v in optional.items() if v is not None},
    )  # fmt: skip


async def _upload_group(state: AppState, principal: Principal, group_id: str) -> groups.Group:
    """The group an upload goes to: the caller must be one of its editors (404 to outsiders, as for no group)."""
    if not (principal.is_staff or group_id in principal.roles):
        raise NotFound(f"no group named {group_id[:80]!r}", parameter="group")
    if not principal.has_role(group_id, EDITOR):
        raise Forbidden("only the group's editors, publishers and City staff upload its layers")
    async with state.db.connection(Workload.WRITES) as conn:
        return await groups.get_group(conn, group_id)


async def _check_quotas(state: AppState, group: groups.Group, received: Received, *, new_layer: bool) -> None:
    quotas = effective_quotas(group, state.settings)
    if received.size > quotas["max_upload_mb"] * 1024**2:
        raise TooLarge(f"the file is larger than this group's {quotas['max_upload_mb']} MB", parameter=FILE_FIELD)
    async with state.db.connection(Workload.WRITES) as conn:
        if new_layer and await changes.group_layer_count(conn, group.id) >= quotas["max_layers"]:
            raise LimitReached(f"this group has {quotas['max_layers']} layers, its most: unpublish one first")
        count, retry_s = await changes.uploads_in_last_hour(conn, group.id)
    if count >= quotas["uploads_per_hour"]:
        raise QuotaExceeded(f"this group made {count} uploads in the last hour, its most", retry_after_s=retry_s)


async def _ingest(state: AppState, job: Job) -> LoadResult:
    """Run the load in a child process (GDAL and a large file's memory stay out of the server), logging progress."""
    last: dict[str, int] = {}

    def progress(layer: str, stage: str, done: int, total: int) -> None:
        percent = 100 * done // max(total, 1)
        if percent >= last.get(stage, -10) + 10:
            last[stage] = percent
            log.info("upload %s: %s %d%%", layer, stage, percent)

    results = await asyncio.to_thread(publish_in_subprocess, state.database_url, [job], progress=progress)
    await state.reload_registry()  # this worker answers with the new layer at once; the others follow the notice
    return results[0]


def _answer(request: Request, state: AppState, principal: Principal, layer_id: str, result: LoadResult | None,
            *, status: int = 200) -> Response:  # fmt: skip
    layer = state.registry.resolve(layer_id, principal)
    doc = collection_document(layer, base_url(request), "en")
    if result is not None:
        doc["ingest"] = {"version": result.version, "features": result.feature_count, "repaired": result.repaired,
                         "dropped_empty": result.dropped_empty}  # fmt: skip
    headers = {"Location": f"{base_url(request)}/collections/{quote(layer_id, safe='')}"} if status == 201 else None
    return json_response(doc, public=False, status=status, headers=headers)


async def _stream_cap(state: AppState) -> int:
    """The most an upload may be while it streams in: the largest any group may send (each group's own limit is
    checked once the form says which group it is)."""
    async with state.db.connection(Workload.WRITES) as conn:
        largest = max([state.settings.upload_max_mb, *(g.max_upload_mb or 0 for g in await groups.list_groups(conn))])
    return largest * 1024**2


def _required(received: Received) -> None:
    missing = [name for name in REQUIRED if not received.fields.get(name, "").strip()]
    if received.path is None:
        missing.insert(0, FILE_FIELD)
    if missing:
        raise InvalidParameter(f"{missing[0]} is required", parameter=missing[0])


@router.post(
    "/collections",
    summary="Upload a community overlay (multipart/form-data)",
    status_code=201,
    openapi_extra=_multipart("file", "id", "title", "group"),
)
async def upload(request: Request, state: StateDep, principal: SignedInDep) -> Response:
    """A new layer from a GeoJSON, GeoPackage, zipped Shapefile, KML or CSV file, seen by the group only at first."""
    async with received_upload(request, state.settings.data_dir / "uploads", await _stream_cap(state)) as received:
        _required(received)
        group = await _upload_group(state, principal, received.fields["group"].strip())
        spec = _spec(received.fields, group)
        async with state.db.connection(Workload.WRITES) as conn:
            if await changes.id_taken(conn, spec.id):
                raise Conflict(f"a layer with the id {spec.id!r} exists: choose another", parameter="id")
        await _check_quotas(state, group, received, new_layer=True)
        assert received.path is not None
        max_features = effective_quotas(group, state.settings)["max_features"]
        upload_job = Upload(received.path, spec, None, max_features, received.size, str(principal.subject))
        result = await _ingest(state, Job(None, upload=upload_job))
    return _answer(request, state, principal, spec.id, result, status=201)


def _editable(state: AppState, principal: Principal, layer_id: str) -> Layer:
    """A layer the caller may change: 404 when it cannot see it, 403 when it may only look."""
    layer = state.registry.resolve(layer_id, principal)
    if not layer.is_community and not principal.is_staff:
        raise Forbidden("City layers are published by City staff")
    if not principal.can_edit(layer):
        raise Forbidden("only the owner group's editors and publishers change this layer")
    return layer


@router.put(
    "/collections/{collection_id}/data",
    summary="Replace an overlay's data (a new version)",
    openapi_extra=_multipart("file", fields=("file",)),
)
async def replace_data(collection_id: str, request: Request, state: StateDep, principal: SignedInDep) -> Response:
    """The uploaded file becomes the layer's next version; metadata, private fields and visibility stay."""
    layer = _editable(state, principal, collection_id)
    if not layer.is_community:
        raise Forbidden("a City layer is loaded from its manifest: geoserver load")
    async with received_upload(request, state.settings.data_dir / "uploads", await _stream_cap(state)) as received:
        if received.path is None:
            raise InvalidParameter("file is required", parameter=FILE_FIELD)
        params.check_known(received.fields, ())
        async with state.db.connection(Workload.WRITES) as conn:
            group = await groups.get_group(conn, str(layer.group_id))
            stored, _ = await changes.stored_manifest(conn, layer.id)
        await _check_quotas(state, group, received, new_layer=False)
        max_features = effective_quotas(group, state.settings)["max_features"]
        upload_job = Upload(received.path, None, stored, max_features, received.size, str(principal.subject))
        result = await _ingest(state, Job(None, upload=upload_job))
    return _answer(request, state, principal, layer.id, result)


@router.patch(
    "/collections/{collection_id}",
    summary="Change an overlay's metadata or who sees it (merge-patch)",
    openapi_extra=_MERGE_PATCH,
)
async def patch_layer(collection_id: str, request: Request, state: StateDep, principal: SignedInDep) -> Response:
    """title, description, category, min_zoom, max_zoom (editors); visibility: public, group:<gid>,
    groups:<gid>,<gid> (publishers)."""
    layer = _editable(state, principal, collection_id)
    body = await json_object(request)
    visibility = body.pop("visibility", None)
    if visibility is not None and not principal.can_publish(layer):
        raise Forbidden("only the owner group's publishers and City staff change who sees a layer")
    async with state.db.connection(Workload.WRITES) as conn, conn.transaction():
        stored, _ = await changes.stored_manifest(conn, layer.id)
        manifest = changes.merge_metadata(stored, body)
        detail: dict[str, Any] = dict(body)
        if visibility is not None:
            public, shared = await changes.parse_visibility(conn, visibility, layer.group_id)
            manifest = manifest.model_copy(
                update={"visibility": "public" if public else f"group:{layer.group_id}", "shared_groups": shared}
            )
            detail["visibility"] = {"from": layer.visibility, "to": visibility}
        action = "visibility" if visibility is not None else "metadata"
        await changes.save_manifest(conn, manifest, str(principal.subject), action, detail)
    await state.reload_registry()
    return _answer(request, state, principal, layer.id, None)


@router.delete("/collections/{collection_id}", summary="Unpublish an overlay (kept; City staff can restore it)",
               status_code=204)  # fmt: skip
async def unpublish(collection_id: str, state: StateDep, principal: SignedInDep) -> Response:
    """The layer disappears for everyone; its data and history are kept."""
    layer = _editable(state, principal, collection_id)
    if not principal.can_publish(layer):
        raise Forbidden("only the owner group's publishers and City staff unpublish a layer")
    async with state.db.connection(Workload.WRITES) as conn, conn.transaction():
        await changes.set_published(conn, layer.id, str(principal.subject), published=False)
    await state.reload_registry()
    return Response(status_code=204)


@router.post("/collections/{collection_id}/restore", summary="Publish an unpublished layer again (City staff)")
async def restore(collection_id: str, request: Request, state: StateDep, principal: StaffDep) -> Response:
    """The layer comes back as it was when it was unpublished."""
    async with state.db.connection(Workload.WRITES) as conn, conn.transaction():
        await changes.set_published(conn, collection_id, str(principal.subject), published=True)
    await state.reload_registry()
    return _answer(request, state, principal, collection_id, None)
