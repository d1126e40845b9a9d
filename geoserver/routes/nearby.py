"""Services near me (`/nearby`) and what's here (`/here`): parse, call `layers.queries.nearby`, shape GeoJSON."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from geoserver import params
from geoserver.auth import PrincipalDep
from geoserver.media import GEOJSON
from geoserver.responses import PRIVATE, url_with
from geoserver.state import StateDep
from layers.errors import InvalidParameter, LayerNotFound
from layers.limits import (
    MAX_CATEGORIES,
    MAX_NEARBY_LAYERS,
    MAX_RADIUS_M,
    MIN_RADIUS_M,
    NEARBY_DEFAULT_LIMIT,
    NEARBY_MAX_LIMIT,
)
from layers.queries import nearby_json
from layers.queries.nearby import SERVICE_AREA_RULE, Hit, NearbyQuery, search_fingerprint, serving_layers
from layers.queries.times import EARLIEST_YEAR, LATEST_YEAR, iso, parse_instant

router = APIRouter(tags=["near me"])
NEARBY_PARAMETERS = ("lon", "lat", "radius", "layers", "category", "open_now", "at", "limit", "cursor")
HERE_PARAMETERS = ("lon", "lat")
# A caller's position is personal: responses are never stored by shared caches.
_HEADERS = {"Cache-Control": PRIVATE, "Vary": "Authorization"}


def _point(values: dict[str, str]) -> tuple[float, float]:
    for name in ("lon", "lat"):
        if name not in values:
            raise InvalidParameter(f"{name} is required", parameter=name)
    return params.number_in(values["lon"], "lon", -180, 180), params.number_in(values["lat"], "lat", -90, 90)


def _query(values: dict[str, str]) -> NearbyQuery:
    lon, lat = _point(values)
    radius = values.get("radius")
    limit = params.integer(values["limit"], "limit") if "limit" in values else NEARBY_DEFAULT_LIMIT
    if not 1 <= limit <= NEARBY_MAX_LIMIT:
        raise InvalidParameter(f"limit must be between 1 and {NEARBY_MAX_LIMIT}", parameter="limit")
    at = values.get("at")
    categories = params.text_list(values.get("category"), "category", MAX_CATEGORIES) or ()
    return NearbyQuery(
        lon,
        lat,
        params.number_in(radius, "radius", MIN_RADIUS_M, MAX_RADIUS_M) if radius is not None else None,
        tuple(dict.fromkeys(categories)),
        params.boolean(values.get("open_now"), parameter="open_now"),
        _moment(at) if at is not None else datetime.now(UTC),
        limit,
    )


def _moment(text: str) -> datetime:
    """`at`: an instant within the years opening hours and event times can be worked out for."""
    moment = parse_instant(text, parameter="at")
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise InvalidParameter(f"at must be between the years {EARLIEST_YEAR} and {LATEST_YEAR}", parameter="at")
    return moment


@router.get(
    "/nearby",
    summary="Features near a point, nearest first",
    description=(
        "Features near the point, sorted by geodesic distance, ties by layer then id. Without `layers`, the visible "
        "layers that serve people (facilities, events, community overlays: their manifests set `serves_people`); "
        "boundaries such as wards and communities are `/here`'s answer, and any layer can be named in `layers`. "
        "Without `radius`, the nearest `limit`; with it, the nearest `limit` within `radius` metres. Each "
        "feature carries its public fields plus `layer`, `distance_m`, `bearing_deg` (from the point, clockwise from "
        "north; null at distance 0), for layers with opening hours `open_now`, `opens_at` and `closes_at` (America/"
        "Edmonton), and for events `happening_now`. Events that ended by `at` are left out. A `next` link carries "
        "an opaque `cursor` for the following page. The caller's coordinates are never logged."
    ),
    response_class=Response,
)
async def nearby(request: Request, state: StateDep, principal: PrincipalDep) -> Response:
    """Nearest features across layers, one page."""
    values = params.single_values(request.query_params.multi_items())
    params.check_known(values, NEARBY_PARAMETERS)
    q = _query(values)
    names = params.text_list(values.get("layers"), "layers", MAX_NEARBY_LAYERS)
    try:
        chosen = (
            serving_layers(state.registry.visible(principal))
            if names is None
            else state.registry.resolve_many(names, principal, cap=MAX_NEARBY_LAYERS, parameter="layers")
        )
    except LayerNotFound as exc:  # here a layer is a parameter value: unknown and invisible ones fail alike, as a 400
        raise InvalidParameter(f"unknown layer {exc.layer_id[:80]!r}", parameter="layers") from None
    bound_to = search_fingerprint(q, [layer.id for layer in chosen])
    if "cursor" in values:
        q = q.after_key(state.cursors.decode(values["cursor"], bound_to))
    state.db.check()  # while the database is out, near me says so, from memory too
    # Memory for anonymous callers only: a signed-in writer reads the primary whichever worker answers it.
    anonymous = principal.is_anonymous
    page = state.nearby.search_in_memory(chosen, q) if anonymous else None
    if page is None:
        async with state.db.read([layer.id for layer in chosen], anonymous=anonymous) as conn:
            page = await state.nearby.search(conn, chosen, q, memory=anonymous)
    links = [{"rel": "self", "href": str(request.url), "type": GEOJSON}]
    if page.next_key is not None:
        token = state.cursors.encode(page.next_key, bound_to)
        links.append({"rel": "next", "href": url_with(request, at=iso(q.at), cursor=token), "type": GEOJSON})
    body = {
        "type": "FeatureCollection",
        "features": [_feature(hit) for hit in page.hits],
        "numberReturned": len(page.hits),
        "at": iso(q.at),
        "timeStamp": iso(datetime.now(UTC)),
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
)
async def here(request: Request, state: StateDep, principal: PrincipalDep) -> Response:
    """Boundaries containing the point, and the facility serving it per service-area category."""
    values = params.single_values(request.query_params.multi_items())
    params.check_known(values, HERE_PARAMETERS)
    lon, lat = _point(values)
    now = datetime.now(UTC)
    visible = state.registry.visible(principal)
    async with state.db.read([layer.id for layer in visible], anonymous=principal.is_anonymous) as conn:
        found = await state.nearby.here(conn, visible, lon, lat, now, memory=principal.is_anonymous)
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
        "timeStamp": iso(now),
    }
    return Response(orjson.dumps(body), media_type=GEOJSON, headers=_HEADERS)


def _feature(hit: Hit) -> orjson.Fragment:
    """A hit as a GeoJSON feature (public fields, then what the search adds), already encoded."""
    return orjson.Fragment(nearby_json.feature(hit))
