"""Near-me hits as GeoJSON bytes, joined from the texts the database built (id, geometry, public fields).

Each feature is a few byte concatenations: no parse of the database's JSON, no dict, no re-encoding. The parts
Python adds (layer, distance, bearing, opening hours, happening now) are encoded once each; the opening-hours part
is the same for every hit with the same status, so it is encoded once per status.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson

from layers.queries.hours import Status
from layers.queries.times import iso

if TYPE_CHECKING:
    from layers.queries.nearby import Hit

# Keys the search adds to a hit's properties; a public field of the same name is replaced, as a dict would.
ADDED = ("layer", "distance_m", "bearing_deg", "open_now", "opens_at", "closes_at", "happening_now")
_ADDED_KEY = re.compile(b"|".join(re.escape(orjson.dumps(name) + b":") for name in ADDED))


def feature(hit: Hit) -> bytes:
    """The hit as a GeoJSON feature: public fields, then what the search adds."""
    props = hit.properties_json.encode()
    if _ADDED_KEY.search(props):  # rare: rebuild through a dict so no key appears twice
        return orjson.dumps(_as_dict(hit))
    added = [
        b'"layer":',
        orjson.dumps(hit.layer),
        b',"distance_m":',
        orjson.dumps(round(hit.distance_m, 2)),
        b',"bearing_deg":',
        orjson.dumps(hit.bearing_deg),
    ]
    if hit.has_hours:
        added.append(_hours(hit.hours))
    if hit.happening_now is not None:
        added.append(b',"happening_now":true' if hit.happening_now else b',"happening_now":false')
    opened = props[:-1] + (b"," if len(props) > 2 else b"")  # the fields' object, still open
    return (
        b'{"type":"Feature","id":' + hit.id_json.encode() + b',"geometry":' + hit.geometry.encode()
        + b',"properties":' + opened + b"".join(added) + b"}}"
    )  # fmt: skip


@lru_cache(maxsize=4096)
def _hours(status: Status | None) -> bytes:
    if status is None:  # a schedule the library cannot read
        return b',"open_now":null,"opens_at":null,"closes_at":null'
    return (
        b',"open_now":' + orjson.dumps(status.open_now)
        + b',"opens_at":' + orjson.dumps(iso(status.opens_at) if status.opens_at else None)
        + b',"closes_at":' + orjson.dumps(iso(status.closes_at) if status.closes_at else None)
    )  # fmt: skip


def _as_dict(hit: Hit) -> dict[str, Any]:
    props = dict(hit.properties)
    props["layer"] = hit.layer
    props["distance_m"] = round(hit.distance_m, 2)
    props["bearing_deg"] = hit.bearing_deg
    if hit.has_hours:
        status = hit.hours
        props["open_now"] = status.open_now if status else None
        props["opens_at"] = iso(status.opens_at) if status and status.opens_at else None
        props["closes_at"] = iso(status.closes_at) if status and status.closes_at else None
    if hit.happening_now is not None:
        props["happening_now"] = hit.happening_now
    return {"type": "Feature", "id": hit.id, "geometry": orjson.Fragment(hit.geometry), "properties": props}
