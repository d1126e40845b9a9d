"""The items request, parsed and checked against the catalogue before any SQL exists.

Every malformed, unknown or out-of-range value raises `InvalidParameter` naming the parameter. Field names are
resolved with `Layer.field`, which refuses private and unknown names alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from layers import crs as crs_mod
from layers.catalog import Layer
from layers.errors import InvalidParameter
from layers.queries import field_kind

DEFAULT_LIMIT = 10
MAX_LIMIT = 10_000
# Deep offsets make the database walk and discard every row before the page; whole layers go through downloads.
MAX_OFFSET = 1_000_000
MAX_RADIUS_M = 50_000.0
MAX_SORT_KEYS = 5
DISTANCE = "distance"
# Parameters of the items endpoint; any other name must be a public field (a `property=value` filter).
ITEMS_PARAMETERS = frozenset(
    {"f", "lang", "limit", "offset", "bbox", "bbox-crs", "datetime", "crs", "filter", "filter-lang", "filter-crs",
     "sortby", "near", "radius", "properties", "skipGeometry"}
)  # fmt: skip
_INTEGER = re.compile(r"[+-]?\d{1,19}")


@dataclass(frozen=True)
class Interval:
    """A closed time interval; None is an open end."""

    start: datetime | None
    end: datetime | None


@dataclass(frozen=True)
class Near:
    """A circle on the ground: a CRS84 centre and a radius in metres."""

    lon: float
    lat: float
    radius_m: float


@dataclass(frozen=True)
class SortKey:
    """One sort key: a public field name, or `distance` with `near`."""

    name: str
    descending: bool = False


@dataclass(frozen=True)
class ItemsQuery:
    """A checked items request."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0
    bbox: tuple[float, float, float, float] | None = None  # x/y order of bbox_crs
    bbox_crs: crs_mod.Crs = crs_mod.CRS84
    datetime: Interval | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    filter: dict[str, Any] | None = None  # a CQL2 JSON tree, see layers.cql
    filter_crs: crs_mod.Crs = crs_mod.CRS84
    sortby: tuple[SortKey, ...] = ()
    near: Near | None = None
    crs: crs_mod.Crs = crs_mod.CRS84
    select: tuple[str, ...] | None = None  # `properties=`: a subset of the public fields
    skip_geometry: bool = False

    @property
    def has_filters(self) -> bool:
        """True when anything narrows the layer down (the count then needs the database)."""
        return bool(self.bbox or self.datetime or self.properties or self.filter or self.near)


def single_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Query parameters as a dict; a parameter given twice is refused rather than silently picking one."""
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            raise InvalidParameter(f"{name!r} is given more than once", parameter=name)
        values[name] = value
    return values


def check_known(values: dict[str, str], allowed: Iterable[str]) -> None:
    """Refuse a parameter the endpoint does not know."""
    known = set(allowed)
    for name in values:
        if name not in known:
            raise InvalidParameter(f"unknown parameter {name[:60]!r}", parameter=name[:60])


def parse_items(layer: Layer, values: dict[str, str]) -> ItemsQuery:
    """Check every parameter of an items request for `layer`."""
    from layers import cql  # cql imports this module's value parsers

    properties: dict[str, Any] = {}
    for name, value in values.items():
        if name in ITEMS_PARAMETERS:
            continue
        try:
            item = layer.field(name, parameter=name)
        except InvalidParameter:
            # The same words for a private name as for one that never existed.
            raise InvalidParameter(f"unknown parameter {name[:60]!r}", parameter=name[:60]) from None
        properties[name] = typed_value(field_kind(item), value, parameter=name)
    bbox_crs = crs_mod.parse_crs(values.get("bbox-crs"), parameter="bbox-crs")
    filter_crs = crs_mod.parse_crs(values.get("filter-crs"), parameter="filter-crs")
    near = parse_near(values.get("near"), values.get("radius"))
    datetime_value = values.get("datetime")
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
        datetime=_layer_datetime(layer, datetime_value),
        properties=properties,
        filter=tree,
        filter_crs=filter_crs,
        sortby=parse_sortby(layer, values.get("sortby"), near=near),
        near=near,
        crs=crs_mod.parse_crs(values.get("crs"), parameter="crs"),
        select=parse_select(layer, values.get("properties")),
        skip_geometry=parse_boolean(values.get("skipGeometry"), parameter="skipGeometry"),
    )


def parse_select(layer: Layer, value: str | None) -> tuple[str, ...] | None:
    """`properties=a,b`: only these public fields in each feature (an empty value: none)."""
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    if len(set(names)) != len(names):
        raise InvalidParameter("properties names a field twice", parameter="properties")
    return tuple(layer.field(name, parameter="properties").name for name in names)


def parse_boolean(value: str | None, *, parameter: str) -> bool:
    """`true` or `false` (absent: false)."""
    if value is None:
        return False
    return bool(typed_value("boolean", value, parameter=parameter))


def parse_limit(value: str | None) -> int:
    """1 or more; values above MAX_LIMIT are clamped to it, as the API document says."""
    if value is None:
        return DEFAULT_LIMIT
    number = _integer(value, "limit")
    if number < 1:
        raise InvalidParameter("limit must be at least 1", parameter="limit")
    return min(number, MAX_LIMIT)


def parse_offset(value: str | None) -> int:
    """0 up to MAX_OFFSET."""
    if value is None:
        return 0
    number = _integer(value, "offset")
    if not 0 <= number <= MAX_OFFSET:
        raise InvalidParameter(f"offset must be between 0 and {MAX_OFFSET}", parameter="offset")
    return number


def _integer(value: str, parameter: str) -> int:
    if not _INTEGER.fullmatch(value.strip()):
        raise InvalidParameter(f"{parameter} must be an integer", parameter=parameter)
    return int(value)


def _numbers(value: str, parameter: str) -> list[float]:
    try:
        numbers = [float(part) for part in value.split(",")]
    except ValueError:
        raise InvalidParameter(f"{parameter} must be comma-separated numbers", parameter=parameter) from None
    if not all(math.isfinite(n) for n in numbers):
        raise InvalidParameter(f"{parameter} must hold finite numbers", parameter=parameter)
    return numbers


def parse_bbox(value: str, bbox_crs: crs_mod.Crs) -> tuple[float, float, float, float]:
    """4 or 6 numbers (the height is ignored), returned in x/y (longitude/latitude or easting/northing) order."""
    numbers = _numbers(value, "bbox")
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    elif len(numbers) != 4:
        raise InvalidParameter("bbox must have 4 or 6 numbers", parameter="bbox")
    if bbox_crs.lat_first:
        numbers = [numbers[1], numbers[0], numbers[3], numbers[2]]
    xmin, ymin, xmax, ymax = numbers
    if ymin > ymax:
        raise InvalidParameter("bbox: the lower corner is north of the upper corner", parameter="bbox")
    if not bbox_crs.projected:
        if not (-90 <= ymin <= 90 and -90 <= ymax <= 90):
            raise InvalidParameter("bbox: latitudes must be between -90 and 90", parameter="bbox")
        if not (-180 <= xmin <= 180 and -180 <= xmax <= 180):
            raise InvalidParameter("bbox: longitudes must be between -180 and 180", parameter="bbox")
    elif xmin > xmax:
        raise InvalidParameter("bbox: the lower corner is east of the upper corner", parameter="bbox")
    return xmin, ymin, xmax, ymax


def parse_datetime(value: str, *, parameter: str = "datetime") -> Interval:
    """An RFC 3339 instant, date, or interval `start/end` with `..` (or nothing) for an open end."""
    parts = value.split("/")
    if len(parts) == 1:
        return _instant_interval(parts[0].strip(), parameter)
    if len(parts) != 2:
        raise InvalidParameter("datetime must be an instant or an interval start/end", parameter=parameter)
    start = None if parts[0].strip() in ("", "..") else _instant_interval(parts[0].strip(), parameter).start
    end = None if parts[1].strip() in ("", "..") else _instant_interval(parts[1].strip(), parameter).end
    if start is not None and end is not None and start > end:
        raise InvalidParameter("datetime: the interval ends before it starts", parameter=parameter)
    return Interval(start, end)


def _instant_interval(text: str, parameter: str) -> Interval:
    """A date covers its whole (UTC) day; a date-time is an instant."""
    if len(text) == 10:
        day = parse_date(text, parameter=parameter)
        start = datetime.combine(day, time(0), tzinfo=UTC)
        return Interval(start, start + timedelta(days=1) - timedelta(microseconds=1))
    instant = parse_timestamp(text, parameter=parameter)
    return Interval(instant, instant)


def parse_timestamp(text: str, *, parameter: str) -> datetime:
    """An RFC 3339 date-time; a time without an offset is taken as UTC, like everywhere in the server."""
    if len(text) < 16 or len(text) > 40 or "\x00" in text:
        raise InvalidParameter(f"{parameter}: not an RFC 3339 date-time", parameter=parameter)
    try:
        instant = datetime.fromisoformat(text.upper().replace(" ", "T", 1))
    except ValueError:
        raise InvalidParameter(f"{parameter}: not an RFC 3339 date-time", parameter=parameter) from None
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def parse_date(text: str, *, parameter: str) -> date:
    """An RFC 3339 full-date (YYYY-MM-DD)."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise InvalidParameter(f"{parameter}: not an RFC 3339 date", parameter=parameter)


def _layer_datetime(layer: Layer, value: str | None) -> Interval | None:
    if value is None:
        return None
    interval = parse_datetime(value)
    if layer.time_start_field is None:
        raise InvalidParameter("this collection has no time fields to match datetime against", parameter="datetime")
    return interval


def typed_value(kind: str, text: str, *, parameter: str) -> Any:
    """A query-string value as the Python value of a field's kind, so the database never sees a malformed one."""
    if "\x00" in text:
        raise InvalidParameter(f"{parameter}: the value holds a NUL character", parameter=parameter)
    if kind == "string":
        return text
    if kind == "integer":
        number = _integer(text, parameter)
        if not -(2**63) <= number < 2**63:
            raise InvalidParameter(f"{parameter}: the integer is out of range", parameter=parameter)
        return number
    if kind == "number":
        numbers = _numbers(text, parameter)
        if len(numbers) != 1:
            raise InvalidParameter(f"{parameter} must be a number", parameter=parameter)
        return numbers[0]
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


def parse_near(near: str | None, radius: str | None) -> Near | None:
    """`near=lon,lat` (CRS84) with `radius` in metres, both or neither."""
    if near is None:
        if radius is not None:
            raise InvalidParameter("radius needs near=<lon>,<lat>", parameter="radius")
        return None
    numbers = _numbers(near, "near")
    if len(numbers) != 2:
        raise InvalidParameter("near must be <lon>,<lat>", parameter="near")
    lon, lat = numbers
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidParameter("near: longitude must be within -180..180 and latitude within -90..90", parameter="near")
    if radius is None:
        raise InvalidParameter("near needs radius=<metres>", parameter="radius")
    radius_values = _numbers(radius, "radius")
    if len(radius_values) != 1 or not 0 < radius_values[0] <= MAX_RADIUS_M:
        raise InvalidParameter(
            f"radius must be a number of metres above 0 and at most {MAX_RADIUS_M:g}", parameter="radius"
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
        if field_kind(item) in ("object", "other"):
            raise InvalidParameter(f"sortby: {name!r} cannot be sorted", parameter="sortby")
        keys.append(SortKey(item.name, descending))
    if len(keys) > MAX_SORT_KEYS or len({k.name for k in keys}) != len(keys):
        raise InvalidParameter(f"sortby takes at most {MAX_SORT_KEYS} different keys", parameter="sortby")
    return tuple(keys)
