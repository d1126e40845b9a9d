"""Near me from memory: the points of a small point layer, held by each worker and searched without the database.

A near-me request that the database answers spends most of its time around the query (the driver, the round trip,
the statement's own bookkeeping), not in it. For point layers of at most `MAX_POINTS` features (facilities, shelters,
a group's overlay of points), each worker keeps the layer's points in a k-d tree of unit vectors, with each feature's
public fields, geometry and id already written as JSON by the database, and answers from it exactly as the
statement would: the same features, the same geodesic distances (GeographicLib on the WGS 84 spheroid, which
PostGIS uses too), the same JSON.

Exact, not approximate: the tree orders points by their distance on a sphere of radius `SPHERE_R`; on the WGS 84
spheroid no path is shorter than `SHORTEST` times its length on that sphere (the smallest radius of curvature, b²/a,
over R). So once the `want`-th best geodesic distance among the points taken is below `SHORTEST` times the sphere
distance of the farthest point taken, no point left out can do better; otherwise more points are taken.

What is current: an index belongs to one version of the layer and to the change notices heard before it was read.
Any notice about the layer (an edit through the API, or a trigger's notice of a change made in the database) makes
it stale at once, and the database answers until a new index has been read (`geoserver/state.py` acts on notices
before a writer's answer goes out, as for tiles).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from psycopg import AsyncConnection, sql
from pyproj import Geod
from scipy.spatial import cKDTree

from layers.catalogue.records import Layer
from layers.queries.nearby_sql import is_events, properties_json
from layers.sqlcompose import Slot, render

MAX_POINTS = 50_000
SPHERE_R = 6_371_008.8
SHORTEST = 0.9944  # (6,335,439 m / SPHERE_R) = 0.99442, rounded down
_A, _RF = 6_378_137.0, 298.257223563
# WGS 84 as PostGIS derives it from SRID 4326 (the semi-minor axis first, then the flattening from it): with the
# degrees passed as PostGIS passes them (`_as_postgis`), distances come out bit for bit as ST_Distance's, which
# cursors compare exactly (5,000 pairs checked, in the City and across the globe).
_GEOD = Geod(a=_A, f=(_A - _A * (1 - 1 / _RF)) / _A)
_FIRST_TAKE = 16
MAX_TAKE = 4096  # points measured per search at most (a few milliseconds)
_MARGIN_M = 1e-6
_ROUNDING = 1e8


def eligible(layer: Layer) -> bool:
    """A layer searched from memory when its index is current: points only, not too many, not events (whose
    `happening now` and end times the statement works out), integer ids (text ids tie in the database's collation),
    and a table whose triggers announce its changes (a view announces none)."""
    return (
        layer.geometry_type == "Point"
        and layer.feature_count <= MAX_POINTS
        and layer.count_kept
        and layer.id_kind == "integer"
        and not is_events(layer)
    )


@dataclass(frozen=True)
class PointIndex:
    """One version of a point layer, as near me needs it."""

    ids: list[Any]
    ids_json: list[str]
    geometries: list[str]
    properties: list[str]
    categories: np.ndarray  # object array of text (None where empty)
    schedules: list[str | None]
    lon: np.ndarray
    lat: np.ndarray
    tree: cKDTree
    has_hours: bool


# Whether the table's update trigger names this layer first among its arguments (one table published as two layers
# announces only the last).
_ANNOUNCED = render(
    sql.SQL(
        "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass({table}) "
        "AND tgname = 'geoserver_announce_update' "
        "AND position(convert_to({layer}, 'UTF8') || decode('00', 'hex') IN tgargs) = 1)"
    ).format(table=Slot("table"), layer=Slot("layer"))
)


def _load_sql(layer: Layer, category: str | None, hours: str | None) -> bytes:
    g = sql.SQL("t.{}").format(sql.Identifier(layer.geometry_column))

    def text_of(column: str | None) -> sql.Composable:
        return sql.SQL("t.{}::text").format(sql.Identifier(column)) if column else sql.SQL("NULL::text")

    return render(
        sql.SQL(
            "SELECT to_jsonb(t.{id})::text, p.x, p.y, ST_AsGeoJSON({g}), ({props})::text, {cat}, {hours}, "
            "coalesce(p.x BETWEEN -180 AND 180 AND p.y BETWEEN -90 AND 90 AND ST_SRID({g}) = 4326, false) "
            "FROM {table} AS t, LATERAL (SELECT CASE WHEN ST_GeometryType({g}) = 'ST_Point' THEN ST_X({g}) END AS x, "
            "CASE WHEN ST_GeometryType({g}) = 'ST_Point' THEN ST_Y({g}) END AS y) AS p "
            "WHERE {g} IS NOT NULL LIMIT {cap}"
        ).format(
            id=sql.Identifier(layer.id_column),
            g=g,
            props=properties_json(layer),
            cat=text_of(category),
            hours=text_of(hours),
            table=layer.table,
            cap=Slot("cap"),
        )
    )


async def load(conn: AsyncConnection[Any], layer: Layer) -> PointIndex | None:
    """The layer's points read into an index; None when it holds anything but points or more than MAX_POINTS.

    The rows are turned into an index in a thread: tens of milliseconds of work that requests need not wait behind."""
    category, hours = layer.public_field(layer.category_field), layer.public_field(layer.opening_hours_field)
    announced = await (await conn.execute(_ANNOUNCED, {"table": layer.table.as_string(), "layer": layer.id})).fetchone()
    if not announced or not announced[0]:
        return None  # its changes would not be heard (a view, or another layer's table)
    cur = await conn.execute(_load_sql(layer, category, hours), {"cap": MAX_POINTS + 1})
    rows = await cur.fetchall()
    if len(rows) > MAX_POINTS or not all(row[7] for row in rows):
        return None
    return await asyncio.to_thread(_index, rows, hours is not None)


def _index(rows: list[tuple[Any, ...]], has_hours: bool) -> PointIndex:
    lon = _as_postgis(np.array([row[1] for row in rows], dtype=np.float64))
    lat = _as_postgis(np.array([row[2] for row in rows], dtype=np.float64))
    return PointIndex(
        ids=[orjson.loads(row[0]) for row in rows],
        ids_json=[row[0] for row in rows],
        geometries=[row[3] for row in rows],
        properties=[row[4] for row in rows],
        categories=np.array([row[5] for row in rows], dtype=object),
        schedules=[row[6] for row in rows],
        lon=lon,
        lat=lat,
        tree=cKDTree(_unit(lon, lat)) if rows else cKDTree(np.zeros((1, 3))),
        has_hours=has_hours,
    )


def _as_postgis(degrees: np.ndarray) -> np.ndarray:
    """Degrees as PostGIS hands them to GeographicLib: through radians and back (the last bit may change)."""
    result: np.ndarray = (np.pi * degrees / 180.0) * 180.0 / np.pi
    return result


def _unit(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    lam, phi = np.radians(lon), np.radians(lat)
    return np.column_stack((np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)))


# Whether a row (distance, id) sorts after the cursor's (distance, id), given how this layer sorts against the
# cursor's layer ("lt": before it, "eq": the same layer, "gt": after it), as the statement's `_after` decides.
After = Callable[[float, Any], bool]


def after_test(rel: str | None, distance_m: float, ident: Any) -> After | None:
    """The cursor's test for one layer, or None on a first page."""
    if rel is None:
        return None
    if rel == "lt":
        return lambda d, i: d > distance_m
    if rel == "eq":
        return lambda d, i: d > distance_m or (d == distance_m and i > ident)
    return lambda d, i: d >= distance_m


def nearest(
    index: PointIndex,
    lon: float,
    lat: float,
    want: int,
    *,
    radius_m: float | None = None,
    accept: Callable[[np.ndarray], np.ndarray] | None = None,
    after: After | None = None,
) -> list[tuple[float, Any, int, float | None]] | None:
    """The `want` nearest points (within `radius_m`, passing `accept` and the cursor), nearest first, ties by id:
    (distance in metres, id, position in the index, azimuth in degrees or None at distance 0). None when that would
    take more than MAX_TAKE points: such a search is left to the database (its timeouts, its pools)."""
    n = len(index.ids)
    if n == 0 or want <= 0:
        return []
    lam, phi = math.radians(lon), math.radians(lat)  # as the index's, to within what _MARGIN_M allows for
    me = (math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi))
    take = min(n, max(2 * want, _FIRST_TAKE))
    while True:
        chords, found = index.tree.query(me, k=[take] if take == 1 else take)
        chosen = found[accept(found)] if accept is not None else found
        # Every point not taken is at least `floor` metres away, geodesically, less a margin for rounding (points at
        # the very place of the query are 0 m away, whatever the floating point chord says).
        arc = SPHERE_R * 2.0 * math.asin(min(1.0, float(chords[-1]) / 2.0))
        floor = math.inf if take >= n else SHORTEST * arc - _MARGIN_M
        hits = _measured(index, lon, lat, chosen, radius_m, after)
        if (
            take >= n
            or (radius_m is not None and radius_m < floor)
            or (len(hits) >= want and hits[want - 1][0] < floor)
        ):
            return hits[:want]
        take = min(n, take * 4)
        if take > MAX_TAKE:
            return None  # far from every point, a rare category or a deep page: the database answers


def _measured(
    index: PointIndex, lon: float, lat: float, chosen: np.ndarray, radius_m: float | None, after: After | None
) -> list[tuple[float, Any, int, float | None]]:
    if len(chosen) == 0:
        return []
    count = len(chosen)
    me_lon, me_lat = (math.pi * lon / 180.0) * 180.0 / math.pi, (math.pi * lat / 180.0) * 180.0 / math.pi  # as PostGIS
    azimuths, _, metres = _GEOD.inv(
        np.full(count, me_lon), np.full(count, me_lat), index.lon[chosen], index.lat[chosen], return_back_azimuth=False
    )
    # As PostGIS rounds a geography distance: to 1e-8 m, half away from zero (C's round).
    distances = np.floor(metres * _ROUNDING + 0.5) / _ROUNDING
    hits = []
    for position, distance, azimuth in zip(chosen.tolist(), distances.tolist(), azimuths.tolist(), strict=True):
        ident = index.ids[position]
        if radius_m is not None and distance > radius_m:
            continue
        if after is not None and not after(distance, ident):
            continue
        hits.append((distance, ident, position, azimuth % 360.0 if distance > 0 else None))
    hits.sort(key=lambda hit: (hit[0], hit[1]))
    return hits


def _size(index: PointIndex | None) -> int:
    if index is None:
        return 0
    texts = sum(map(len, index.geometries)) + sum(map(len, index.properties)) + sum(map(len, index.ids_json))
    return texts + _POINT_OVERHEAD_BYTES * len(index.ids)


REBUILD_EVERY_S = 2.0  # at most one read of a layer's points every 2 s (edits may come many times a second)


@dataclass(frozen=True)
class _Held:
    version: int
    heard: tuple[int, int]  # (epoch, the layer's notices) when its points were read
    index: PointIndex | None  # None: the layer holds more than points, or too many
    size: int  # bytes, roughly: the texts held plus a fixed cost per point


MEMORY_BUDGET_BYTES = 128 * 1024 * 1024  # per worker; the least recently searched layers go first
_POINT_OVERHEAD_BYTES = 400  # the objects around each point's texts (measured: 11.5 MB for 20,000 facilities)


class MemoryIndexes:
    """The indexes of one worker: which are current, which to read next (a builder task reads them: `build`)."""

    def __init__(self) -> None:
        self._held: OrderedDict[str, _Held] = OrderedDict()  # least recently searched first
        self._heard: dict[str, int] = {}  # notices heard per layer
        self._epoch = 0  # notices heard without a layer (changes may have been missed): every index is stale
        self._reading: set[str] = set()
        self._last_read: dict[str, float] = {}
        self._wanted: asyncio.Queue[Layer] = asyncio.Queue()
        self._listening = False  # notices are heard: without them no index can be trusted

    def listening(self, heard: bool) -> None:
        """Whether change notices are being heard now (the catalogue watcher says so as it connects and fails)."""
        self._listening = heard

    def changed(self, layer_id: str | None) -> None:
        """A change notice about the layer (None: about any layer): its index is stale from now on."""
        if layer_id is None:
            self._epoch += 1
            self._held.clear()
        else:
            self._heard[layer_id] = self._heard.get(layer_id, 0) + 1
            self._held.pop(layer_id, None)  # its memory goes now (a removed layer's too)

    def current(self, layers: Sequence[Layer]) -> list[PointIndex] | None:
        """The current index of every layer, or None when any has none (the database answers; the missing ones are
        asked for)."""
        if not self._listening:
            return None
        found = []
        for layer in layers:
            if not eligible(layer):
                return None
            held = self._held.get(layer.id)
            if held is None or held.version != layer.version or held.heard != self._now_heard(layer.id):
                self._want(layer)
                return None
            if held.index is None:
                return None
            self._held.move_to_end(layer.id)
            found.append(held.index)
        return found

    def is_current(self, layer: Layer) -> bool:
        """True when near me searches this version of the layer from memory now (asks for nothing)."""
        held = self._held.get(layer.id)
        return (
            self._listening
            and held is not None
            and held.index is not None
            and held.version == layer.version
            and held.heard == self._now_heard(layer.id)
        )

    async def next_wanted(self) -> Layer:
        """The next layer to read (for the builder task)."""
        return await self._wanted.get()

    async def build(self, conn: AsyncConnection[Any], layer: Layer) -> None:
        """Read the layer's points; the index is current until the next notice about the layer."""
        heard = self._now_heard(layer.id)  # before the read: a change it misses is heard after this
        try:
            index = await load(conn, layer)
            self._held[layer.id] = _Held(layer.version, heard, index, _size(index))
            self._held.move_to_end(layer.id)
            while len(self._held) > 1 and sum(h.size for h in self._held.values()) > MEMORY_BUDGET_BYTES:
                self._held.popitem(last=False)
        finally:
            self._reading.discard(layer.id)

    def read_failed(self, layer_id: str) -> None:
        """The read could not start (no connection): the layer may be asked for again."""
        self._reading.discard(layer_id)

    def _now_heard(self, layer_id: str) -> tuple[int, int]:
        return self._epoch, self._heard.get(layer_id, 0)

    def _want(self, layer: Layer) -> None:
        now = time.monotonic()
        if layer.id in self._reading or now - self._last_read.get(layer.id, -math.inf) < REBUILD_EVERY_S:
            return
        self._reading.add(layer.id)
        self._last_read[layer.id] = now
        self._wanted.put_nowait(layer)
