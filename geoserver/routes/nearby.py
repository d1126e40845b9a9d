"""Services near me (`/nearby`) and what's here (`/here`): parse, call `layers.nearby`, shape GeoJSON."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from geoserver.auth import PrincipalDep
from geoserver.state import StateDep
from layers.errors import InvalidParameter
from layers.nearby import (
    DEFAULT_LIMIT,
    MAX_LAYERS,
    MAX_LIMIT,
    MAX_RADIUS_M,
    SERVICE_AREA_RULE,
    Hit,
    NearbyQuery,
    NearbyService,
    fingerprint,
    resolve_layers,
)

router = APIRouter(tags=["near me"])
log = logging.getLogger("geoserver.nearby")
CURSOR_KEY_FILE = Path("keys") / "nearby-cursor.key"
GEOJSON = "application/geo+json"
MAX_CATEGORIES = 20
# RFC 3339 date-time: a full date, a time, and an offset (a time without one would be ambiguous).
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
# A caller's position is personal: responses are never stored by shared caches.
_HEADERS = {"Cache-Control": "private, no-store", "Vary": "Authorization"}
_BAD_INPUT: dict[int | str, dict[str, Any]] = {
    400: {"description": "A parameter is missing, malformed, out of range or unknown (JSON error body)."}
}

Lon = Annotated[
    float, Query(ge=-180, le=180, allow_inf_nan=False, description="Longitude of the point, WGS 84 degrees.")
]
Lat = Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False, description="Latitude of the point, WGS 84 degrees.")]


def _only(*allowed: str) -> Any:
    """A dependency refusing unknown or repeated query parameters: a typo must not silently widen a search."""

    async def check(request: Request) -> None:  # async: a plain def would cost a thread hop per request
        for name in request.query_params:
            if name not in allowed:
                raise InvalidParameter(f"unknown parameter {name[:40]!r}", parameter=name[:40])
            if len(request.query_params.getlist(name)) > 1:
                raise InvalidParameter(f"{name} is given more than once", parameter=name)

    return Depends(check)


async def _service(request: Request, state: StateDep) -> NearbyService:
    """The app's NearbyService (its SQL cache and cursor key), made on first use: nothing at import time."""
    service: NearbyService | None = getattr(request.app.state, "nearby", None)
    if service is None:
        secret = state.settings.cursor_secret
        key = (
            hashlib.sha256(secret.get_secret_value().encode()).digest()
            if secret is not None
            else cursor_key(state.settings.data_dir / CURSOR_KEY_FILE)
        )
        service = request.app.state.nearby = NearbyService(key)
    return service


def cursor_key(path: Path) -> bytes:
    """The key that signs cursors, shared by every worker on this data directory (created once, mode 0600).

    A next link may reach another worker process than the one that signed it. Where the data directory cannot be
    written, the key is per process: cursors then only work on the worker that made them.
    """
    try:
        return path.read_bytes()[:64] or _new_key(path)
    except FileNotFoundError:
        return _new_key(path)
    except OSError:
        log.warning("cannot read %s; next links only work on the worker that made them", path.name)
        return secrets.token_bytes(32)


def _new_key(path: Path) -> bytes:
    key = secrets.token_bytes(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key)
        try:
            os.link(partial, path)  # atomic, and refuses to replace: of two racing workers, one key wins
        except FileExistsError:
            pass
        finally:
            partial.unlink()
        return path.read_bytes()[:64]
    except OSError:
        log.warning("cannot write %s; next links only work on the worker that made them", path.name)
        return key


ServiceDep = Annotated[NearbyService, Depends(_service)]


@router.get(
    "/nearby",
    summary="Features near a point, nearest first",
    description=(
        "Features of every visible layer (or of `layers`) near the point, sorted by geodesic distance, ties by layer "
        "then id. Without `radius`, the nearest `limit`; with it, the nearest `limit` within `radius` metres. Each "
        "feature carries its public fields plus `layer`, `distance_m`, `bearing_deg` (from the point, clockwise from "
        "north; null at distance 0), for layers with opening hours `open_now`, `opens_at` and `closes_at` (America/"
        "Edmonton), and for events `happening_now`. Events that ended by `at` are left out. A `next` link carries "
        "an opaque `cursor` for the following page. The caller's coordinates are never logged."
    ),
    response_class=Response,
    responses={200: {"content": {GEOJSON: {}}, "description": "A GeoJSON FeatureCollection."}, **_BAD_INPUT},
    dependencies=[_only("lon", "lat", "radius", "layers", "category", "open_now", "at", "limit", "cursor")],
)
async def nearby(
    request: Request,
    state: StateDep,
    principal: PrincipalDep,
    service: ServiceDep,
    lon: Lon,
    lat: Lat,
    radius: Annotated[
        float | None,
        Query(gt=0, le=MAX_RADIUS_M, allow_inf_nan=False, description="Search radius in metres (geodesic)."),
    ] = None,
    layers: Annotated[
        str | None,
        Query(max_length=2000, description=f"Comma-separated layer ids (at most {MAX_LAYERS}); default all visible."),
    ] = None,
    category: Annotated[
        str | None,
        Query(
            max_length=2000,
            description="Comma-separated feature categories (e.g. library,fire_station); only layers with categories.",
        ),
    ] = None,
    open_now: Annotated[
        bool, Query(description="true: only features open at `at` (layers with opening hours). false: no filter.")
    ] = False,
    at: Annotated[
        str | None, Query(max_length=40, description="RFC 3339 instant for hours and events; default now.")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Features per page, 1 to {MAX_LIMIT}; above it 400.")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=1000, description="Opaque cursor from a `next` link; the other parameters too.")
    ] = None,
) -> Response:
    """Nearest features across layers, one page."""
    names = _list(layers, "layers", MAX_LAYERS)
    chosen = resolve_layers(state.registry, principal, names)
    when = _instant(at)
    categories = tuple(dict.fromkeys(_list(category, "category", MAX_CATEGORIES) or ()))
    q = NearbyQuery(lon, lat, radius, categories, open_now, when, limit)
    bound_to = fingerprint(q, [layer.id for layer in chosen])
    if cursor is not None:
        q = NearbyQuery(lon, lat, radius, categories, open_now, when, limit, service.decode_cursor(cursor, bound_to))
    async with state.pool.connection() as conn:
        page = await service.search(conn, chosen, q)
    links = [{"rel": "self", "href": str(request.url), "type": GEOJSON}]
    if page.next_key is not None:
        token = service.encode_cursor(page.next_key, bound_to)
        href = request.url.include_query_params(at=_iso(when), cursor=token)
        links.append({"rel": "next", "href": str(href), "type": GEOJSON})
    body = {
        "type": "FeatureCollection",
        "features": [_feature(hit) for hit in page.hits],
        "numberReturned": len(page.hits),
        "at": _iso(when),
        "timeStamp": _iso(datetime.now(UTC)),
        "links": links,
    }
    return Response(orjson.dumps(body), media_type=GEOJSON, headers=_HEADERS)


@router.get(
    "/here",
    summary="What's here: boundaries containing a point, and the facilities serving it",
    description=(
        "`features`: the features of visible boundary layers (category `boundaries`: wards, communities, service "
        "zones) that contain the point. `serving`: for each facility category with service areas (fire_station, "
        f"library, recreation_centre), the facility serving the point, defined as the {SERVICE_AREA_RULE}."
    ),
    response_class=Response,
    responses={200: {"content": {GEOJSON: {}}, "description": "A GeoJSON FeatureCollection."}, **_BAD_INPUT},
    dependencies=[_only("lon", "lat")],
)
async def here(state: StateDep, principal: PrincipalDep, service: ServiceDep, lon: Lon, lat: Lat) -> Response:
    """Boundaries containing the point, and the facility serving it per service-area category."""
    now = datetime.now(UTC)
    async with state.pool.connection() as conn:
        found = await service.here(conn, state.registry.visible(principal), lon, lat, now)
    features = [
        {
            "type": "Feature",
            "id": b.id,
            "geometry": orjson.Fragment(b.geometry),
            "properties": {**b.properties, "layer": b.layer},
        }
        for b in found.boundaries
    ]
    body = {
        "type": "FeatureCollection",
        "features": features,
        "numberReturned": len(features),
        "serving": {category: _feature(hit) for category, hit in found.serving.items()},
        "service_area": SERVICE_AREA_RULE,
        "timeStamp": _iso(now),
    }
    return Response(orjson.dumps(body), media_type=GEOJSON, headers=_HEADERS)


def _feature(hit: Hit) -> dict[str, Any]:
    """A hit as a GeoJSON feature: public fields, then what the search adds."""
    props = dict(hit.properties)
    props["layer"] = hit.layer
    props["distance_m"] = round(hit.distance_m, 2)
    props["bearing_deg"] = hit.bearing_deg
    if hit.has_hours:
        status = hit.hours
        props["open_now"] = status.open_now if status else None
        props["opens_at"] = _iso(status.opens_at) if status and status.opens_at else None
        props["closes_at"] = _iso(status.closes_at) if status and status.closes_at else None
    if hit.happening_now is not None:
        props["happening_now"] = hit.happening_now
    return {"type": "Feature", "id": hit.id, "geometry": orjson.Fragment(hit.geometry), "properties": props}


def _list(value: str | None, parameter: str, cap: int) -> list[str] | None:
    if value is None:
        return None
    items = [item.strip() for item in value.split(",")]
    if not all(items):
        raise InvalidParameter(f"{parameter} must be a comma-separated list without empty items", parameter=parameter)
    if len(items) > cap:
        raise InvalidParameter(f"at most {cap} items in {parameter}", parameter=parameter)
    return items


def _instant(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise InvalidParameter(
            "at must be an RFC 3339 date-time with an offset, e.g. 2026-07-15T18:00:00Z", parameter="at"
        )
    day, clock, fraction, offset = match.groups()
    # Python reads at most 6 fractional digits; RFC 3339 allows more, which only matter below a microsecond.
    micro = "." + fraction[1:7].ljust(6, "0") if fraction else ""
    try:
        return datetime.fromisoformat(f"{day}T{clock}{micro}{'+00:00' if offset in 'Zz' else offset}")
    except ValueError:
        raise InvalidParameter("at is not a valid date-time", parameter="at") from None


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
