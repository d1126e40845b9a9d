"""Search by name or address (`/search`): parse, call `layers.queries.search` over the public layers, shape GeoJSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from geoserver import i18n, params
from geoserver.media import GEOJSON
from geoserver.responses import PRIVATE, PUBLIC_MAX_AGE_S
from geoserver.state import StateDep
from layers.catalogue.records import Layer
from layers.catalogue.visibility import ANONYMOUS
from layers.queries.search import DIGITS, Found
from layers.queries.times import iso

router = APIRouter(tags=["search"])
SEARCH_PARAMETERS = ("q", "lon", "lat", "limit", "lang")


@router.get(
    "/search",
    summary="Features of the public layers by name or address",
    description=(
        "Features whose searchable fields (names, addresses: each manifest's `searchable_fields`) hold every word "
        "of `q`, case-insensitively, anywhere in the text; when none does, those with a word spelt like `q` "
        "(trigram similarity). Public layers only, whoever asks. With `lon` and `lat`, the nearest first (geodesic "
        "`distance_m`); without, the best matches first (text starting with `q`, then a word starting with it, then "
        "the shortest). Each feature has a `bbox` and its public fields plus `layer` and `layer_title` (in `lang`, "
        "English when the layer has no title in it). A point is personal: such answers are never stored by caches."
    ),
    response_class=Response,
)
async def search(request: Request, state: StateDep) -> Response:
    """The best matches for the words of `q`, or the nearest ones to a point."""
    values = params.single_values(request.query_params.multi_items())
    params.check_known(values, SEARCH_PARAMETERS)
    q = params.parse_search(values)
    lang = i18n.negotiate_map(values.get("lang"), request.headers.get("accept-language"))
    layers = {layer.id: layer for layer in state.registry.visible(ANONYMOUS)}
    async with state.db.read(list(layers), anonymous=True) as conn:  # public layers only, whoever asks
        found = await state.search.search(conn, list(layers.values()), q)
    features = [_feature(item, layers[item.layer], lang) for item in found]
    body = {
        "type": "FeatureCollection",
        "features": features,
        "numberReturned": len(features),
        "timeStamp": iso(datetime.now(UTC)),
        "links": [{"rel": "self", "href": str(request.url), "type": GEOJSON}],
    }
    cache = PRIVATE if q.point is not None else f"public, max-age={PUBLIC_MAX_AGE_S}"
    headers = {"Cache-Control": cache, "Vary": "Accept-Language", "Content-Language": lang}
    return Response(orjson.dumps(body), media_type=GEOJSON, headers=headers)


def _feature(item: Found, layer: Layer, lang: str) -> dict[str, Any]:
    """A match as a GeoJSON feature: public fields, then what the search adds."""
    props = {**item.properties, "layer": item.layer, "layer_title": layer.title_in(lang)}
    if item.distance_m is not None:
        props["distance_m"] = round(item.distance_m, 2)
    return {
        "type": "Feature",
        "id": item.id,
        "bbox": [round(value, DIGITS) for value in item.bbox],
        "geometry": orjson.Fragment(item.geometry),
        "properties": props,
    }
