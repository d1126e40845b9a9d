"""Open311 GeoReport v2 at /open311/v2 (discovery at /open311/discovery.{json,xml}), our `stats` extension and
staff's status changes. Parse, call `layers.open311`, answer in JSON or XML; errors in GeoReport's own format.
"""

from __future__ import annotations

import csv
import hashlib
import io
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from geoserver import params
from geoserver.auth import PrincipalDep, StaffDep
from geoserver.bodies import read_form
from geoserver.database import Workload
from geoserver.georeport import GeoReportRoute, answer, check_format, path_error
from geoserver.negotiation import none_match
from geoserver.responses import PRIVATE, base_url, pick_language
from geoserver.sharedcache import keys_for
from geoserver.state import AppState, StateDep
from layers.access import tokens
from layers.errors import Forbidden, InvalidParameter, NotFound
from layers.open311 import reads, stats, status, store
from layers.open311.catalogue import Service, ServiceCatalogue
from layers.open311.places import RequestsLayer, requests_layer
from layers.open311.submission import check_submission, raise_jurisdiction

router = APIRouter(tags=["open311"], route_class=GeoReportRoute)
V2 = "/open311/v2"
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
PUBLIC = {"Cache-Control": "public, max-age=300", "Vary": "Accept-Language"}
REQUESTS_PUBLIC = {"Cache-Control": "public, max-age=60", "Vary": "Authorization, Accept-Language"}
STAFF = {"Cache-Control": PRIVATE, "Vary": "Authorization, Accept-Language"}


def _values(request: Request, catalogue: ServiceCatalogue, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query parameters, each once and known; a jurisdiction_id, when sent, must be ours (404 otherwise)."""
    values = params.single_values(request.query_params.multi_items())
    params.check_known(values, ("jurisdiction_id", "lang", *allowed))
    jurisdiction = values.get("jurisdiction_id", "").strip()
    if jurisdiction and jurisdiction != catalogue.jurisdiction_id:
        raise_jurisdiction(jurisdiction)
    return values


@router.get("/open311/discovery.{fmt}")
async def discovery(request: Request, state: StateDep, fmt: str) -> Response:
    """Service discovery: where the GeoReport v2 endpoint is, its formats, how to get a key."""
    fmt, catalogue = check_format(fmt), state.services()
    lang = pick_language(request, _values(request, catalogue, ()))
    endpoint = {
        "specification": SPECIFICATION, "url": base_url(request) + V2, "changeset": catalogue.changeset,
        "type": "test" if catalogue.all_demo else "production", "formats": ["text/xml", "application/json"],
    }  # fmt: skip
    body = {"changeset": catalogue.changeset, "contact": catalogue.contact.get(lang),
            "key_service": catalogue.key_service.get(lang), "endpoints": [endpoint]}  # fmt: skip
    return answer(fmt, "discovery", body, headers=PUBLIC)


def _path_id(value: str, parameter: str) -> str:
    """An id or token from the path: one that cannot exist (empty, over 64 characters, a NUL) is not found."""
    if not 1 <= len(value) <= 64 or "\x00" in value:
        raise NotFound(f"{parameter} was not found", parameter=parameter)
    return value


def _layer_keys(where: RequestsLayer) -> dict[str, str]:
    """Answers made from the requests layer stay in shared caches until it changes (a submission, a status change,
    an edit): every instance purges the layer's `items/` key then. Without this, the path's `catalogue` key would
    keep them until a catalogue reload."""
    return {"Surrogate-Key": " ".join(keys_for("items", [where.layer.id]))}


def _service(service: Service, lang: str) -> dict[str, Any]:
    return {
        "service_code": service.code, "service_name": service.name.get(lang),
        "description": service.description.get(lang), "metadata": bool(service.attributes), "type": service.type,
        "keywords": ", ".join(service.keywords), "group": service.group,
    }  # fmt: skip


@router.get(V2 + "/services.{fmt}")
async def services(request: Request, state: StateDep, fmt: str) -> Response:
    """The services residents may report."""
    fmt, catalogue = check_format(fmt), state.services()
    lang = pick_language(request, _values(request, catalogue, ()))
    return answer(fmt, "services", [_service(s, lang) for s in catalogue.services], headers=PUBLIC)


@router.get(V2 + "/services/{code}.{fmt}")
async def service_definition(request: Request, state: StateDep, code: str, fmt: str) -> Response:
    """A service's definition: the questions it asks."""
    fmt, catalogue = check_format(fmt), state.services()
    lang = pick_language(request, _values(request, catalogue, ()))
    service = catalogue.service(code)
    attributes = [
        {"variable": a.variable, "code": a.code, "datatype": a.datatype, "required": a.required,
         "datatype_description": a.datatype_description.get(lang) if a.datatype_description else None,
         "order": order, "description": a.description.get(lang),
         "values": [{"key": v.key, "name": v.name.get(lang)} for v in a.values]}
        for order, a in enumerate(service.attributes, start=1)
    ]  # fmt: skip
    return answer(fmt, "service_definition", {"service_code": service.code, "attributes": attributes}, headers=PUBLIC)


@router.get(V2 + "/requests.{fmt}")
async def list_requests(request: Request, state: StateDep, principal: PrincipalDep, fmt: str) -> Response:
    """Requests by ids, or by service codes, statuses and a span of at most 90 days; newest first."""
    fmt, catalogue = check_format(fmt), state.services()
    values = _values(request, catalogue, ("service_request_id", "service_code", "start_date", "end_date", "status"))
    query = params.georeport_query(values, catalogue.codes, exact=principal.is_staff)
    return await _requests(state, catalogue, query, pick_language(request, values), fmt)


@router.get(V2 + "/requests/{request_id}.{fmt}")
async def one_request(
    request: Request, state: StateDep, principal: PrincipalDep, request_id: str, fmt: str
) -> Response:
    """One request, as a list of one (as the specification answers it)."""
    fmt, catalogue = check_format(fmt), state.services()
    values = _values(request, catalogue, ())
    query = reads.RequestQuery(ids=(_path_id(request_id, "service_request_id"),), exact=principal.is_staff)
    return await _requests(state, catalogue, query, pick_language(request, values), fmt, one=True)


async def _requests(
    state: AppState, catalogue: ServiceCatalogue, query: reads.RequestQuery, lang: str, fmt: str, *, one: bool = False
) -> Response:
    where = requests_layer(catalogue, state.registry)
    async with state.db.connection() as conn:
        found = await reads.find_requests(conn, catalogue, where, query, lang)
    if one and not found:
        raise NotFound("service_request_id was not found", parameter="service_request_id")
    return answer(
        fmt, "service_requests", found, headers=STAFF if query.exact else REQUESTS_PUBLIC | _layer_keys(where)
    )


@router.post(V2 + "/requests.{fmt}")
async def submit(request: Request, state: StateDep, fmt: str) -> Response:
    """Create a request (or answer the first of its duplicates): an id, or a token for a `batch` service."""
    fmt, catalogue = check_format(fmt), state.services()
    if "api_key" in request.query_params or "access_token" in request.query_params:
        # A key in a URL ends up in logs, histories and Referer headers: refuse it outright.
        raise InvalidParameter("send api_key in the request body, never in the URL", parameter="api_key")
    form = await read_form(request)
    key_values = form.pop("api_key", [])
    if len(key_values) != 1 or not key_values[0].strip():
        raise Forbidden("api_key was not provided" if not key_values else "send api_key once")
    async with state.db.connection() as conn:
        key = await tokens.api_key(conn, key_values[0].strip())
    if key is None:
        raise Forbidden("invalid api_key: unknown, revoked or expired")
    if not key.may_submit_311:
        raise Forbidden("this api_key may not submit service requests")
    submission = check_submission(catalogue, form)
    who = store.Submitter(key.subject, key.prefix, key.group_id, _client_digest(state, request))
    limits = store.Limits(state.settings.open311_per_key_per_hour, state.settings.open311_per_address_per_hour)
    where = requests_layer(catalogue, state.registry)
    async with state.db.connection(Workload.WRITES) as conn:
        created = await store.create(conn, where, submission, who, limits)
    lang = pick_language(request, {})
    notice = submission.service.service_notice
    reference = {"token": created.token} if created.token else {"service_request_id": created.request_id}
    body = [{**reference, "service_notice": notice.get(lang) if notice else None, "account_id": None}]
    return answer(fmt, "service_requests", body, headers={"Cache-Control": PRIVATE})


def _client_digest(state: AppState, request: Request) -> bytes:
    """The client's address (behind a trusted proxy, the one it forwards for) as a digest: enough to count its
    submissions, and never stored in clear."""
    address = state.client_address(request.scope)
    return hashlib.sha256(b"geoserver.open311.client:" + address.encode()).digest()


@router.get(V2 + "/tokens/{token}.{fmt}")
async def token_request(request: Request, state: StateDep, token: str, fmt: str) -> Response:
    """The request id a `batch` submission's token stands for."""
    fmt, catalogue = check_format(fmt), state.services()
    _values(request, catalogue, ())
    token = _path_id(token, "token")
    async with state.db.connection() as conn:
        request_id = await reads.request_for_token(conn, token)
    return answer(fmt, "service_requests", [{"service_request_id": request_id, "token": token}], headers=PUBLIC)


@router.post(V2 + "/requests/{request_id}/status.{fmt}")
async def change_status(request: Request, state: StateDep, principal: StaffDep, request_id: str, fmt: str) -> Response:
    """City staff: set `status` (open, closed) and `status_notes`; answers the request as staff see it."""
    fmt, catalogue = check_format(fmt), state.services()
    request_id = _path_id(request_id, "service_request_id")
    lang = pick_language(request, _values(request, catalogue, ()))
    form = await read_form(request)
    params.check_known({name: "" for name in form}, ("status", "status_notes"))
    if any(len(values) > 1 for values in form.values()):
        raise InvalidParameter("each field is given once", parameter="body")
    notes = form["status_notes"][0] if "status_notes" in form else None
    where = requests_layer(catalogue, state.registry)
    async with state.db.connection(Workload.WRITES) as conn:
        await status.set_status(
            conn, where, request_id, (form.get("status") or [""])[0], notes, actor=str(principal.subject)
        )
    return await _requests(state, catalogue, reads.RequestQuery(ids=(request_id,), exact=True), lang, fmt, one=True)


@router.get(V2 + "/stats")
async def measures(request: Request, state: StateDep) -> Response:
    """Our extension: requests and median hours to close per ward, service code and month (`by`), as JSON or CSV
    (`format`); a cell of fewer than five requests is never shown."""
    catalogue = state.services()
    values = _values(request, catalogue, ("by", "format"))
    fmt = values.get("format", "json")
    if fmt not in ("json", "csv"):
        raise InvalidParameter("format must be json or csv", parameter="format")
    by = stats.check_dimensions(params.text_list(values.get("by"), "by", len(stats.DIMENSIONS)))
    where = requests_layer(catalogue, state.registry)
    # An aggregate over every request: heavy work, kept off the connections map requests need.
    async with state.heavy.hold(request.scope), state.db.connection(Workload.HEAVY) as conn:
        found = await stats.compute(conn, catalogue, where, by)
    if fmt == "csv":
        text = io.StringIO()
        writer = csv.DictWriter(text, [*by, "requests", "median_hours_to_close"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(found.cells)
        body, media_type = text.getvalue().encode(), "text/csv; charset=utf-8"
    else:
        doc = {"by": list(by), "min_cell": stats.MIN_CELL, "cells": found.cells,
               "suppressed_cells": found.suppressed_cells}  # fmt: skip
        body, media_type = orjson.dumps(doc), "application/json"
    etag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
    headers = {**PUBLIC, **_layer_keys(where), "ETag": etag}
    if none_match(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@router.api_route("/open311/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def unknown(rest: str) -> Response:
    """Anything else under /open311 is a GeoReport 404."""
    return path_error(rest, 404, "no such GeoReport resource")
