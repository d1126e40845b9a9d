"""Services near me and what's here: nearest features across layers, within a radius, and point-in-polygon.

Distances are geodesic (geography on the WGS 84 spheroid). Indexes are on EPSG:4326 geometry, where a degree of
longitude is shorter than a degree of latitude at Calgary's latitude, so index order is not distance order:
- nearest N: KNN (`<->`) takes the N nearest by index order; the largest geodesic distance among them bounds the
  true N nearest, which a second, bounded search then ranks by geodesic distance. The answer is exact, not a guess.
- within a radius: a bounding box in degrees, computed conservatively from the radius, keeps the GiST index in use;
  the geodesic distance then decides.
A layer's SQL is composed from catalogue names once per layer version and cached; requests bind values only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson
from psycopg import AsyncConnection

from layers.catalogue.manifest import BOUNDARIES_CATEGORY
from layers.catalogue.records import Layer
from layers.errors import InvalidParameter
from layers.queries import hours
from layers.queries.cursor import CursorKey, fingerprint
from layers.queries.nearby_memory import MemoryIndexes, PointIndex, after_test, nearest
from layers.queries.nearby_sql import Rel, distinct_sql, here_sql, search_sql
from layers.sqlcompose import StatementCache

MAX_SCHEDULES = 20_000  # statuses kept (one per distinct schedule text); beyond it the cache starts again
MAX_DISTINCT = 5_000  # categories or schedules per layer we enumerate; beyond it a layer cannot use that filter
# Facility categories with a service area: the facility that serves a point is the nearest one of the category by
# geodesic distance, i.e. the point's Voronoi cell (no drawn catchment boundaries exist in the catalogue).
SERVICE_AREA_CATEGORIES = ("fire_station", "library", "recreation_centre")
FACILITIES_CATEGORY = "facilities"  # the catalogue category of the layers that serve areas
SERVICE_AREA_RULE = "nearest facility of the category by geodesic distance (Voronoi-style service area)"


@dataclass(frozen=True)
class NearbyQuery:
    """One nearby search, validated."""

    lon: float
    lat: float
    radius_m: float | None
    categories: tuple[str, ...]
    open_now: bool
    at: datetime
    limit: int
    after: CursorKey | None = None

    def after_key(self, key: CursorKey) -> NearbyQuery:
        """The same search, for the page after `key`."""
        return dataclasses.replace(self, after=key)


@dataclass(slots=True)  # not frozen: made eleven times per request, and a frozen init costs five times as much
class Hit:
    """One feature found near the point."""

    layer: str
    id: Any
    distance_m: float
    bearing_deg: float | None
    geometry: str  # GeoJSON text, as the database wrote it
    properties_json: str  # the public fields as a JSON object, as the database wrote it
    happening_now: bool | None
    hours: hours.Status | None
    has_hours: bool
    id_json: str  # the id as JSON text

    @property
    def properties(self) -> dict[str, Any]:
        """The public fields."""
        result: dict[str, Any] = orjson.loads(self.properties_json)
        return result


@dataclass(frozen=True)
class Page:
    """A page of hits, and the key after its last hit when more follow."""

    hits: list[Hit]
    next_key: CursorKey | None


@dataclass(frozen=True)
class Boundary:
    """A boundary feature containing the point."""

    layer: str
    id: Any
    geometry: str
    properties: dict[str, Any]


@dataclass(frozen=True)
class Here:
    """What's here: the boundaries containing the point and, per service-area category, the facility serving it."""

    boundaries: list[Boundary]
    serving: dict[str, Hit]


@dataclass(frozen=True)
class _Facts:
    categories: frozenset[str] | None  # None: too many to enumerate
    schedules: tuple[str, ...] | None


class NearbyService:
    """Per-app SQL cache and per-layer-version facts (categories, schedules)."""

    def __init__(self, cache_size: int = 512) -> None:
        self._statements = StatementCache(cache_size)
        self.memory = MemoryIndexes()  # small point layers, searched without the database when current
        self._facts: dict[tuple[str, int], _Facts] = {}
        # Per schedule text: the status, and the instants between which it holds (until its next change).
        self._statuses: dict[str, tuple[datetime, datetime, hours.Status]] = {}

    def status(self, text: str, at: datetime) -> hours.Status | None:
        """A schedule's status at `at` (None when malformed), computed once per schedule until its next change."""
        cached = self._statuses.get(text)
        if cached is not None and cached[0] <= at < cached[1]:
            return cached[2]
        schedule = hours.parse_cached(text)
        if schedule is None:
            return None
        found, until = hours.status_until(schedule, at)
        if until is not None:  # the same status holds from `at` until then
            if len(self._statuses) >= MAX_SCHEDULES:
                self._statuses.clear()
            self._statuses[text] = (at, until, found)
        return found

    async def search(
        self, conn: AsyncConnection[Any], layers: Sequence[Layer], q: NearbyQuery, *, memory: bool = True
    ) -> Page:
        """Features near the point across `layers`, nearest first (ties by layer, then id), one page; from the
        layers' indexes when current and `memory` allows (anonymous callers: a signed-in writer reads the primary,
        whichever worker answers)."""
        layers = await self._narrow(conn, layers, q)
        open_texts: list[str] = []
        if q.open_now:
            for layer in layers:
                facts = await self._facts_of(conn, layer)
                open_texts += [t for t in facts.schedules or () if self._is_open(t, q.at)]
        if not layers:
            return Page([], None)
        after = q.after
        parts = tuple(
            (layer, q.radius_m is None, bool(q.categories), q.open_now, _rel(layer.id, after)) for layer in layers
        )
        indexes = self.memory.current(layers) if memory else None
        rows = _rows_from_memory(indexes, layers, q, frozenset(open_texts)) if indexes is not None else None
        if rows is None:
            statement = self._statement(parts, q.limit + 1)
            params: dict[str, Any] = {
                "lon": q.lon, "lat": q.lat, "radius_m": q.radius_m, "at": q.at,
                "categories": list(q.categories), "open_schedules": open_texts,
                "after_d": after.distance_m if after else None, "after_id": after.id if after else None,
            }  # fmt: skip
            rows = await (await conn.execute(statement, params)).fetchall()
        return self._page(rows, layers, q)

    def search_in_memory(self, layers: Sequence[Layer], q: NearbyQuery) -> Page | None:
        """The page without the database, when every layer's index is current and no filter needs the layers'
        facts; None otherwise (then `search`)."""
        if q.categories or q.open_now or not layers:
            return None
        indexes = self.memory.current(layers)
        rows = _rows_from_memory(indexes, layers, q, frozenset()) if indexes is not None else None
        return self._page(rows, layers, q) if rows is not None else None

    def _page(self, rows: Sequence[tuple[Any, ...]], layers: Sequence[Layer], q: NearbyQuery) -> Page:
        hits = sorted((self._hit(row, layers, q.at) for row in rows), key=lambda h: (h.distance_m, h.layer, h.id))
        more = len(hits) > q.limit
        hits = hits[: q.limit]
        last = hits[-1] if hits else None
        next_key = CursorKey(last.distance_m, last.layer, last.id) if more and last else None
        return Page(hits, next_key)

    async def here(
        self,
        conn: AsyncConnection[Any],
        layers: Sequence[Layer],
        lon: float,
        lat: float,
        at: datetime,
        *,
        memory: bool = True,
    ) -> Here:
        """Boundaries of `layers` containing the point, and the facility serving it for each service-area category."""
        polygons = [
            layer
            for layer in layers
            if layer.category == BOUNDARIES_CATEGORY and layer.geometry_type in ("Polygon", "MultiPolygon")
        ]
        boundaries: list[Boundary] = []
        if polygons:
            key = ("here", *((p.id, p.version) for p in polygons))
            statement = self._statements.get(key, lambda: here_sql(polygons))
            rows = await (await conn.execute(statement, {"lon": lon, "lat": lat})).fetchall()
            boundaries = [Boundary(polygons[r[0]].id, orjson.loads(r[1]), r[2], orjson.loads(r[3])) for r in rows]
            boundaries.sort(key=lambda b: (b.layer, str(b.id)))
        serving: dict[str, Hit] = {}
        for category in SERVICE_AREA_CATEGORIES:
            candidates = []
            for layer in layers:
                if layer.public_field(layer.category_field) is None or layer.category != FACILITIES_CATEGORY:
                    continue
                known = (await self._facts_of(conn, layer)).categories
                if known is not None and category in known:
                    candidates.append(layer)
            if candidates:
                q = NearbyQuery(lon, lat, None, (category,), False, at, 1)
                page = await self.search(conn, candidates, q, memory=memory)
                if page.hits:
                    serving[category] = page.hits[0]
        return Here(boundaries, serving)

    async def _narrow(self, conn: AsyncConnection[Any], layers: Sequence[Layer], q: NearbyQuery) -> list[Layer]:
        """Only layers a category or open-now filter can apply to; 400 for a category no layer knows."""
        chosen = list(layers)
        if q.open_now and not any(layer.public_field(layer.opening_hours_field) for layer in chosen):
            raise InvalidParameter("none of the layers has opening hours", parameter="open_now")
        if q.categories:
            chosen = [layer for layer in chosen if layer.public_field(layer.category_field)]
            if not chosen:
                raise InvalidParameter("none of the layers has categories", parameter="category")
            known: set[str] = set()
            keep = []
            for layer in chosen:
                cats = (await self._facts_of(conn, layer)).categories
                if cats is None or cats.intersection(q.categories):
                    keep.append(layer)
                known |= cats if cats is not None else set(q.categories)
            unknown = [c for c in q.categories if c not in known]
            if unknown:
                raise InvalidParameter(f"unknown category {unknown[0][:80]!r}", parameter="category")
            chosen = keep
        if q.open_now:
            chosen = [layer for layer in chosen if layer.public_field(layer.opening_hours_field)]
            for layer in chosen:
                if (await self._facts_of(conn, layer)).schedules is None:
                    raise InvalidParameter(f"layer {layer.id!r} has too many distinct schedules", parameter="open_now")
        return chosen

    async def _facts_of(self, conn: AsyncConnection[Any], layer: Layer) -> _Facts:
        """The distinct categories and schedules of a layer, read once per layer version."""
        key = (layer.id, layer.version)
        facts = self._facts.get(key)
        if facts is None:
            facts = _Facts(
                await _distinct(conn, layer, layer.public_field(layer.category_field)),
                _tuple(await _distinct(conn, layer, layer.public_field(layer.opening_hours_field))),
            )
            self._facts = {k: v for k, v in self._facts.items() if k[0] != layer.id}  # older versions go
            self._facts[key] = facts
        return facts

    def _is_open(self, text: str, at: datetime) -> bool:
        found = self.status(text, at)
        return found is not None and found.open_now

    def _hit(self, row: tuple[Any, ...], layers: Sequence[Layer], at: datetime) -> Hit:
        branch, ident, distance_m, bearing, geometry, props, happening, has_hours, schedule_text = row
        status = self.status(schedule_text, at) if schedule_text is not None else None
        bearing_deg = None if bearing is None or math.isnan(bearing) else round(bearing, 1)
        return Hit(
            layers[branch].id,
            orjson.loads(ident),
            distance_m,
            bearing_deg,
            geometry,
            props,
            happening,
            status,
            has_hours,
            ident,
        )

    def _statement(self, parts: tuple[tuple[Layer, bool, bool, bool, Rel], ...], lim: int) -> bytes:
        key = (lim, *((layer.id, layer.version, *rest) for layer, *rest in parts))
        return self._statements.get(key, lambda: search_sql(parts, lim))


def serving_layers(layers: Sequence[Layer]) -> list[Layer]:
    """The layers near-me searches when none are named: those that serve people (facilities, events, overlays)."""
    return [layer for layer in layers if layer.serves_people]


def search_fingerprint(q: NearbyQuery, layer_ids: Sequence[str]) -> str:
    """What a cursor is bound to: every parameter of the search except limit and the cursor itself."""
    return fingerprint(
        [q.lon, q.lat, q.radius_m, sorted(layer_ids), sorted(q.categories), q.open_now, q.at.isoformat()]
    )


def _rows_from_memory(
    indexes: Sequence[PointIndex], layers: Sequence[Layer], q: NearbyQuery, open_texts: frozenset[str]
) -> list[tuple[Any, ...]] | None:
    """The rows the search statement would give (`lim` per layer), from the layers' indexes; None when a layer's
    search would be too long for memory (the database answers)."""
    rows: list[tuple[Any, ...]] = []
    categories = frozenset(q.categories)
    for branch, (layer, index) in enumerate(zip(layers, indexes, strict=True)):
        after = after_test(_rel(layer.id, q.after), q.after.distance_m, q.after.id) if q.after else None
        accept = _acceptor(index, categories, open_texts if q.open_now else None)
        found = nearest(index, q.lon, q.lat, q.limit + 1, radius_m=q.radius_m, accept=accept, after=after)
        if found is None:
            return None
        for distance, _, i, azimuth in found:
            rows.append((branch, index.ids_json[i], distance, azimuth, index.geometries[i], index.properties[i], None,
                         index.has_hours, index.schedules[i]))  # fmt: skip
    return rows


def _acceptor(
    index: PointIndex, categories: frozenset[str], open_texts: frozenset[str] | None
) -> Callable[[np.ndarray], np.ndarray] | None:
    """The filter of the statement's WHERE (categories, open now) over positions in the index; None for none."""
    if not categories and open_texts is None:
        return None

    def accept(found: np.ndarray) -> np.ndarray:
        return np.fromiter(
            (
                (not categories or index.categories[i] in categories)
                and (open_texts is None or index.schedules[i] in open_texts)
                for i in found.tolist()
            ),
            dtype=bool,
            count=len(found),
        )

    return accept


def _tuple(values: frozenset[str] | None) -> tuple[str, ...] | None:
    return tuple(sorted(values)) if values is not None else None


def _rel(layer_id: str, after: CursorKey | None) -> Rel:
    """How a layer sorts against the cursor's layer: decides whether equal distances come after the cursor."""
    if after is None:
        return None
    return "lt" if layer_id < after.layer else "eq" if layer_id == after.layer else "gt"


async def _distinct(conn: AsyncConnection[Any], layer: Layer, column: str | None) -> frozenset[str] | None:
    """Distinct non-null values of a public column as text; None when there are too many to enumerate."""
    if column is None:
        return frozenset()
    rows = await (await conn.execute(distinct_sql(layer, column), {"cap": MAX_DISTINCT + 1})).fetchall()
    return frozenset(r[0] for r in rows) if len(rows) <= MAX_DISTINCT else None
