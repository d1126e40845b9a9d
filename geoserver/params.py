"""Request parsing, the one way: query strings checked against the catalogue and turned into typed queries.

Every route takes its query parameters as a dict of single values (`single_values`), refuses names it does not know
(`check_known`), and reads each value with the parsers here. Every malformed, unknown or out-of-range value raises
`InvalidParameter` naming the parameter, before any SQL exists. Field names are resolved with `Layer.field`, which
refuses private and unknown names alike.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from layers.catalogue.records import Layer
from layers.errors import InvalidParameter
from layers.limits import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_OFFSET,
    MAX_RADIUS_M,
    MAX_SORT_KEYS,
    MIN_RADIUS_M,
    SEARCH_DEFAULT_LIMIT,
    SEARCH_MAX_CHARS,
    SEARCH_MAX_LIMIT,
    SEARCH_MAX_WORDS,
    SEARCH_MIN_CHARS,
)
from layers.open311.reads import MAX_IDS, RequestQuery
from layers.queries import cql
from layers.queries import crs as crs_mod
from layers.queries.cursor import CursorSigner, fingerprint, valid_id
from layers.queries.items import DISTANCE, ItemsQuery, Near, SortKey
from layers.queries.search import SearchQuery
from layers.queries.times import Interval, parse_date, parse_instant, parse_interval, parse_timestamp

# Parameters of the items endpoint; any other name must be a public field (a `property=value` filter).
ITEMS_PARAMETERS = frozenset(
    {"f", "lang", "limit", "offset", "bbox", "bbox-crs", "datetime", "crs", "filter", "filter-lang", "filter-crs",
     "sortby", "near", "radius", "properties", "skipGeometry", "cursor"}
)  # fmt: skip
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")
# A decimal number as written in URLs: ASCII digits, optional fraction and exponent. Python's float() also takes
# "1_000", "infinity", surrounding blanks and other scripts' digits, which no client means as a number.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")


def single_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Query parameters as a dict; a parameter given twice is refused rather than silently picking one, and so is a
    NUL character (PostgreSQL cannot take one in text: it would otherwise reach the driver and answer 500)."""
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            raise InvalidParameter(f"{name!r} is given more than once", parameter=name)
        if "\x00" in value:
            raise InvalidParameter(f"{name[:60]}: the value holds a NUL character", parameter=name[:60])
        values[name] = value
    return values


def check_known(values: dict[str, str], allowed: Iterable[str]) -> None:
    """Refuse a parameter the endpoint does not know: a typo must not silently widen a search."""
    known = set(allowed)
    for name in values:
        if name not in known:
            raise InvalidParameter(f"unknown parameter {name[:60]!r}", parameter=name[:60])


# -- scalar values -------------------------------------------------------------------------------------------
def integer(value: str, parameter: str) -> int:
    """A decimal integer that PostgreSQL's bigint holds."""
    if not _INTEGER.fullmatch(value) or not -(2**63) <= int(value) < 2**63:
        raise InvalidParameter(f"{parameter} must be an integer of at most 19 digits", parameter=parameter)
    return int(value)


def numbers(value: str, parameter: str) -> list[float]:
    """Comma-separated finite numbers."""
    parts = value.split(",")
    if not all(_DECIMAL.fullmatch(part) for part in parts):
        raise InvalidParameter(f"{parameter} must be comma-separated numbers", parameter=parameter)
    found = [float(part) for part in parts]
    if not all(math.isfinite(n) for n in found):
        raise InvalidParameter(f"{parameter} must hold finite numbers", parameter=parameter)
    return found


def number_in(value: str, parameter: str, low: float, high: float, *, above_low: bool = False) -> float:
    """One finite number within [low, high] (or (low, high] with `above_low`)."""
    number = float(value) if _DECIMAL.fullmatch(value) else math.nan
    if not (low < number if above_low else low <= number) or not number <= high:  # NaN fails both
        interval = f"above {low:g} and at most {high:g}" if above_low else f"between {low:g} and {high:g}"
        raise InvalidParameter(f"{parameter} must be a number {interval}", parameter=parameter)
    return number


def boolean(value: str | None, *, parameter: str) -> bool:
    """`true` or `false` (absent: false)."""
    if value is None:
        return False
    return bool(typed_value("boolean", value, parameter=parameter))


def text_list(value: str | None, parameter: str, cap: int) -> list[str] | None:
    """A comma-separated list without empty items, at most `cap` of them (None when absent)."""
    if value is None:
        return None
    items = [item.strip() for item in value.split(",")]
    if not all(items):
        raise InvalidParameter(f"{parameter} must be a comma-separated list without empty items", parameter=parameter)
    if len(items) > cap:
        raise InvalidParameter(f"at most {cap} items in {parameter}", parameter=parameter)
    return items


def typed_value(kind: str, text: str, *, parameter: str) -> Any:
    """A query-string value as the Python value of a field's kind, so the database never sees a malformed one."""
    if "\x00" in text:
        raise InvalidParameter(f"{parameter}: the value holds a NUL character", parameter=parameter)
    if kind == "string":
        return text
    if kind == "integer":
        number = integer(text, parameter)
        if not -(2**63) <= number < 2**63:
            raise InvalidParameter(f"{parameter}: the integer is out of range", parameter=parameter)
        return number
    if kind == "number":
        found = numbers(text, parameter)
        if len(found) != 1:
            raise InvalidParameter(f"{parameter} must be a number", parameter=parameter)
        return found[0]
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            raise InvalidParameter(f"{parameter} must be true or false", parameter=parameter)
        return lowered == "true"
    if kind == "datetime":
        return parse_timestamp(text.strip(), parameter=parameter)
    if kind == "date":
        return parse_date(text.strip(), parameter=parameter)
    raise InvalidParameter(f"{parameter!r} cannot be used as a filter", parameter=parameter)


# -- the items endpoint --------------------------------------------------------------------------------------
def parse_items(layer: Layer, values: dict[str, str]) -> ItemsQuery:
    """Check every parameter of an items request for `layer`."""
    properties: dict[str, Any] = {}
    for name, value in values.items():
        if name in ITEMS_PARAMETERS:
            continue
        try:
            item = layer.field(name, parameter=name)
        except InvalidParameter:
            # The same words for a private name as for one that never existed.
            raise InvalidParameter(f"unknown parameter {name[:60]!r}", parameter=name[:60]) from None
        properties[name] = typed_value(item.kind, value, parameter=name)
    bbox_crs = crs_mod.parse_crs(values.get("bbox-crs"), parameter="bbox-crs")
    near = parse_near(values.get("near"), values.get("radius"))
    tree = None
    if values.get("filter") is not None:
        tree = cql.parse(values["filter"], values.get("filter-lang"))
    elif "filter-lang" in values:
        cql.check_lang(values["filter-lang"])
    return ItemsQuery(
        limit=parse_limit(values.get("limit")),
        offset=parse_offset(values.get("offset")),
        bbox=parse_bbox(values["bbox"], bbox_crs) if "bbox" in values else None,
        bbox_crs=bbox_crs,
        datetime=_layer_datetime(layer, values.get("datetime")),
        properties=properties,
        filter=tree,
        filter_crs=crs_mod.parse_crs(values.get("filter-crs"), parameter="filter-crs"),
        sortby=parse_sortby(layer, values.get("sortby"), near=near),
        near=near,
        crs=crs_mod.parse_crs(values.get("crs"), parameter="crs"),
        select=parse_select(layer, values.get("properties")),
        skip_geometry=boolean(values.get("skipGeometry"), parameter="skipGeometry"),
    )


# Parameters that do not change which features match or their order: a next link's cursor survives them.
_NOT_IN_CURSOR = frozenset({"cursor", "offset", "limit", "f", "lang"})


def items_fingerprint(layer: Layer, values: dict[str, str]) -> str:
    """What an items cursor is bound to: the layer and every parameter that decides the features and their order."""
    return fingerprint([layer.id, sorted((k, v) for k, v in values.items() if k not in _NOT_IN_CURSOR)])


def items_cursor(layer: Layer, query: ItemsQuery, values: dict[str, str], cursors: CursorSigner) -> ItemsQuery:
    """`cursor` of a next link: the page after the previous page's last id (keyset), in the same search."""
    if "cursor" not in values:
        return query
    if "offset" in values:
        raise InvalidParameter("give either offset or cursor, not both", parameter="cursor")
    offset, after = cursors.decode_values(values["cursor"], items_fingerprint(layer, values), 2)
    if not (query.keyset and isinstance(offset, int) and offset >= 0 and valid_id(after)):
        raise InvalidParameter("invalid cursor: ask for the first page again", parameter="cursor")
    # The offset travels along only to number the pages (prev links); the keyset decides where the page starts.
    return dataclasses.replace(query, offset=offset, after=after)


def parse_select(layer: Layer, value: str | None) -> tuple[str, ...] | None:
    """`properties=a,b`: only these public fields in each feature (an empty value: none)."""
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    if len(set(names)) != len(names):
        raise InvalidParameter("properties names a field twice", parameter="properties")
    return tuple(layer.field(name, parameter="properties").name for name in names)


def parse_limit(value: str | None) -> int:
    """1 or more; values above MAX_LIMIT are clamped to it, as the API document says."""
    if value is None:
        return DEFAULT_LIMIT
    number = integer(value, "limit")
    if number < 1:
        raise InvalidParameter("limit must be at least 1", parameter="limit")
    return min(number, MAX_LIMIT)


def parse_offset(value: str | None) -> int:
    """0 up to MAX_OFFSET."""
    if value is None:
        return 0
    number = integer(value, "offset")
    if not 0 <= number <= MAX_OFFSET:
        raise InvalidParameter(f"offset must be between 0 and {MAX_OFFSET}", parameter="offset")
    return number


def parse_bbox(value: str, bbox_crs: crs_mod.Crs) -> tuple[float, float, float, float]:
    """4 or 6 numbers (heights checked, then ignored), in x/y (longitude/latitude or easting/northing) order."""
    found = numbers(value, "bbox")
    if len(found) == 6:
        if found[2] > found[5]:
            raise InvalidParameter("bbox: the lower corner is above the upper corner", parameter="bbox")
        found = [found[0], found[1], found[3], found[4]]
    elif len(found) != 4:
        raise InvalidParameter("bbox must have 4 or 6 numbers", parameter="bbox")
    if bbox_crs.lat_first:
        found = [found[1], found[0], found[3], found[2]]
    xmin, ymin, xmax, ymax = found
    if ymin > ymax:
        raise InvalidParameter("bbox: the lower corner is north of the upper corner", parameter="bbox")
    if not bbox_crs.projected:
        if not (-90 <= ymin <= 90 and -90 <= ymax <= 90):
            raise InvalidParameter("bbox: latitudes must be between -90 and 90", parameter="bbox")
        if not (-180 <= xmin <= 180 and -180 <= xmax <= 180):
            raise InvalidParameter("bbox: longitudes must be between -180 and 180", parameter="bbox")
    elif xmin > xmax:
        raise InvalidParameter("bbox: the lower corner is east of the upper corner", parameter="bbox")
    else:
        crs_mod.check_domain([(xmin, ymin), (xmin, ymax), (xmax, ymin), (xmax, ymax)], bbox_crs, parameter="bbox")
    return xmin, ymin, xmax, ymax


def _layer_datetime(layer: Layer, value: str | None) -> Interval | None:
    if value is None:
        return None
    interval = parse_interval(value)
    if layer.time_start_field is None:
        raise InvalidParameter("this collection has no time fields to match datetime against", parameter="datetime")
    return interval


def parse_near(near: str | None, radius: str | None) -> Near | None:
    """`near=lon,lat` (CRS84) with `radius` in metres, both or neither."""
    if near is None:
        if radius is not None:
            raise InvalidParameter("radius needs near=<lon>,<lat>", parameter="radius")
        return None
    point = numbers(near, "near")
    if len(point) != 2:
        raise InvalidParameter("near must be <lon>,<lat>", parameter="near")
    lon, lat = point
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidParameter("near: longitude must be within -180..180 and latitude within -90..90", parameter="near")
    if radius is None:
        raise InvalidParameter("near needs radius=<metres>", parameter="radius")
    radius_values = numbers(radius, "radius")
    if len(radius_values) != 1 or not MIN_RADIUS_M <= radius_values[0] <= MAX_RADIUS_M:
        raise InvalidParameter(
            f"radius must be a number of metres from {MIN_RADIUS_M:g} to {MAX_RADIUS_M:g}", parameter="radius"
        )
    return Near(lon, lat, radius_values[0])


def parse_sortby(layer: Layer, value: str | None, *, near: Near | None) -> tuple[SortKey, ...]:
    """`sortby=name,-other`: public fields only ('+' arrives as a space); `distance` only with `near`."""
    if value is None:
        return (SortKey(DISTANCE),) if near is not None else ()
    keys: list[SortKey] = []
    for raw in value.split(","):
        term = raw.strip()
        descending = term.startswith("-")
        name = term.lstrip("+-").strip() if term[:1] in "+-" else term
        if not name:
            raise InvalidParameter("sortby: an empty sort key", parameter="sortby")
        if name == DISTANCE and near is not None:
            keys.append(SortKey(DISTANCE, descending))
            continue
        if name == DISTANCE and DISTANCE not in layer.field_names:
            raise InvalidParameter("sortby=distance needs near=<lon>,<lat>&radius=<m>", parameter="sortby")
        item = layer.field(name, parameter="sortby")
        if item.kind in ("object", "other"):
            raise InvalidParameter(f"sortby: {name!r} cannot be sorted", parameter="sortby")
        keys.append(SortKey(item.name, descending))
    if len(keys) > MAX_SORT_KEYS or len({k.name for k in keys}) != len(keys):
        raise InvalidParameter(f"sortby takes at most {MAX_SORT_KEYS} different keys", parameter="sortby")
    return tuple(keys)


# -- search --------------------------------------------------------------------------------------------------
def parse_search(values: dict[str, str]) -> SearchQuery:
    """`q` (words of a name or address), an optional `lon`/`lat` (both or neither) and `limit`."""
    text = " ".join(values.get("q", "").split())
    if "\x00" in text or not SEARCH_MIN_CHARS <= len(text) <= SEARCH_MAX_CHARS:
        raise InvalidParameter(
            f"q must hold {SEARCH_MIN_CHARS} to {SEARCH_MAX_CHARS} characters (spaces aside)", parameter="q"
        )
    words = tuple(dict.fromkeys(text.split()))
    if len(words) > SEARCH_MAX_WORDS:
        raise InvalidParameter(f"q may hold at most {SEARCH_MAX_WORDS} words", parameter="q")
    point = None
    if "lon" in values or "lat" in values:
        for name in ("lon", "lat"):
            if name not in values:
                raise InvalidParameter(f"{name} is needed with {'lat' if name == 'lon' else 'lon'}", parameter=name)
        point = (number_in(values["lon"], "lon", -180, 180), number_in(values["lat"], "lat", -90, 90))
    limit = integer(values["limit"], "limit") if "limit" in values else SEARCH_DEFAULT_LIMIT
    if not 1 <= limit <= SEARCH_MAX_LIMIT:
        raise InvalidParameter(f"limit must be between 1 and {SEARCH_MAX_LIMIT}", parameter="limit")
    return SearchQuery(text, words, point, limit)


# -- GeoReport's GET requests ----------------------------------------------------------------------------------
GEOREPORT_SPAN = timedelta(days=90)  # the specification's default and longest span


def georeport_query(values: dict[str, str], codes: Iterable[str], *, exact: bool) -> RequestQuery:
    """`service_request_id` (which overrides the rest), `service_code`, `status`, `start_date`, `end_date`."""
    ids = text_list(values.get("service_request_id"), "service_request_id", MAX_IDS)
    if ids is not None:
        return RequestQuery(ids=tuple(ids), exact=exact)
    wanted = text_list(values.get("service_code"), "service_code", 100)
    unknown = next((c for c in wanted or () if c not in set(codes)), None)
    if unknown is not None:
        raise InvalidParameter(f"service_code {unknown[:64]!r} is not one of this server's", parameter="service_code")
    statuses = text_list(values.get("status"), "status", 2)
    if statuses is not None and not set(statuses) <= {"open", "closed"}:
        raise InvalidParameter("status takes open, closed or both", parameter="status")
    start, end = (parse_instant(values[n], parameter=n) if values.get(n) else None for n in ("start_date", "end_date"))
    if start is None:
        end = end or datetime.now(UTC)
        start = end - GEOREPORT_SPAN
    elif end is None:
        end = start + GEOREPORT_SPAN
    if end < start or end - start > GEOREPORT_SPAN:
        raise InvalidParameter("start_date and end_date must span at most 90 days, in order", parameter="end_date")
    return RequestQuery(
        codes=tuple(wanted) if wanted else None,
        statuses=tuple(statuses) if statuses else None,
        start=start,
        end=end,
        exact=exact,
    )
