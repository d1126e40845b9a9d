"""A checked items request (`ItemsQuery`): what `features` turns into SQL. `geoserver.params` builds it from a URL."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from layers.limits import DEFAULT_LIMIT
from layers.queries import crs as crs_mod
from layers.queries.times import Interval

DISTANCE = "distance"  # the sort key of a near-me search inside the items endpoint


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
    """A checked items request: every name is a public field, every value typed."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0
    bbox: tuple[float, float, float, float] | None = None  # x/y order of bbox_crs
    bbox_crs: crs_mod.Crs = crs_mod.CRS84
    datetime: Interval | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    filter: dict[str, Any] | None = None  # a CQL2 JSON tree, see layers.queries.cql
    filter_crs: crs_mod.Crs = crs_mod.CRS84
    sortby: tuple[SortKey, ...] = ()
    near: Near | None = None
    crs: crs_mod.Crs = crs_mod.CRS84
    select: tuple[str, ...] | None = None  # `properties=`: a subset of the public fields
    skip_geometry: bool = False
    after: Any = None  # keyset paging: the page starts after this id (only when ordered by id alone)

    @property
    def keyset(self) -> bool:
        """True when the page order is the id alone, so a next page can start after the last id."""
        return not self.sortby

    @property
    def has_filters(self) -> bool:
        """True when anything narrows the layer down (the count then needs the database)."""
        return bool(self.bbox or self.datetime or self.properties or self.filter or self.near)
