"""Items of a layer: the SQL of a checked `ItemsQuery`, and running it.

A page is one statement: an inner query picks the page's rows (plain columns, so skipped rows cost nothing to
encode), an outer one encodes them as GeoJSON text, and the exact number matched rides along as an InitPlan.
Unfiltered managed layers take their count from the catalogue, which every load updates in the same transaction
as the rows. Large pages stream from a server-side cursor a chunk at a time.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql

from layers.catalogue.fieldtypes import SQL_CASTS, kind_of
from layers.catalogue.models import LAYERS_TABLE
from layers.catalogue.records import Layer
from layers.queries import cql
from layers.queries import crs as crs_mod
from layers.queries.geojson import feature_json
from layers.queries.items import DISTANCE, ItemsQuery
from layers.sqlcompose import Binder, Slot, render

STREAM_ABOVE = 1_000  # pages up to this size are fetched in one go; larger ones stream
CHUNK_ROWS = 1_000
DISTANCE_PROPERTY = "distance_m"
_DISTANCE_COLUMN = "__distance_m"
# Metres per degree of latitude, with a margin: the bounding-box prefilter must never cut a feature within radius.
_M_PER_DEGREE = 110_000.0


@dataclass(frozen=True)
class ItemsSql:
    """The statements of one items request and their bound values."""

    page: bytes  # rows of (feature GeoJSON text, number matched or NULL)
    count: bytes
    params: dict[str, Any]
    count_params: dict[str, Any] | None  # None when the count has no placeholder (nothing filters)
    needs_count: bool  # False when the catalogue's count is exact
    count_in_page: bool  # True when each page row carries the count


def where(layer: Layer, query: ItemsQuery, bind: Binder) -> sql.Composable:
    """The WHERE condition of a query (TRUE when nothing filters)."""
    geom = sql.Identifier(layer.geometry_column)
    conditions: list[sql.Composable] = []
    if query.bbox is not None:
        conditions.append(_bbox(geom, query, bind))
    if query.datetime is not None and layer.time_start_field is not None:
        conditions.append(_datetime(layer, query, bind))
    for name, value in query.properties.items():
        kind = layer.field(name).kind
        conditions.append(sql.SQL("{} = {}::{}").format(sql.Identifier(name), bind(value), sql.SQL(SQL_CASTS[kind])))
    if query.filter is not None:
        conditions.append(cql.to_sql(query.filter, layer, bind=bind, filter_crs=query.filter_crs))
    if query.near is not None:
        conditions.append(_near(geom, query, bind))
    return sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("TRUE")


def _bbox(geom: sql.Composable, query: ItemsQuery, bind: Binder) -> sql.Composable:
    assert query.bbox is not None
    xmin, ymin, xmax, ymax = query.bbox
    if xmin > xmax:  # a geographic bbox across the antimeridian: two boxes
        return sql.SQL("({} OR {})").format(
            _bbox_part(geom, (xmin, ymin, 180.0, ymax), query.bbox_crs, bind),
            _bbox_part(geom, (-180.0, ymin, xmax, ymax), query.bbox_crs, bind),
        )
    return _bbox_part(geom, query.bbox, query.bbox_crs, bind)


def _bbox_part(
    geom: sql.Composable, box: tuple[float, float, float, float], box_crs: crs_mod.Crs, bind: Binder
) -> sql.Composable:
    # The numbers are already in x/y order: build the envelope in the CRS's SRID, without flipping.
    envelope = sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, {})").format(
        *(bind(float(n)) for n in box), sql.Literal(box_crs.srid)
    )
    if box_crs.srid != crs_mod.STORAGE.srid:
        envelope = sql.SQL("ST_Transform({}, 4326)").format(envelope)
    return sql.SQL("ST_Intersects({}, {})").format(geom, envelope)


def _datetime(layer: Layer, query: ItemsQuery, bind: Binder) -> sql.Composable:
    """Features whose instant, or [start, end] interval (no end: still going), meets the requested interval."""
    assert query.datetime is not None and layer.time_start_field is not None
    start = sql.Identifier(layer.time_start_field)
    end = sql.Identifier(layer.time_end_field) if layer.time_end_field else None
    parts: list[sql.Composable] = []
    if query.datetime.end is not None:
        parts.append(sql.SQL("{} <= {}::timestamptz").format(start, bind(query.datetime.end)))
    if query.datetime.start is not None:
        if end is None:
            parts.append(sql.SQL("{} >= {}::timestamptz").format(start, bind(query.datetime.start)))
        else:
            parts.append(
                sql.SQL("({end} IS NULL OR {end} >= {v}::timestamptz)").format(end=end, v=bind(query.datetime.start))
            )
    parts.append(sql.SQL("{} IS NOT NULL").format(start))
    return sql.SQL("({})").format(sql.SQL(" AND ").join(parts))


def _point(query: ItemsQuery, bind: Binder) -> sql.Composable:
    assert query.near is not None
    return sql.SQL("ST_SetSRID(ST_MakePoint({}, {}), 4326)").format(bind(query.near.lon), bind(query.near.lat))


def _near(geom: sql.Composable, query: ItemsQuery, bind: Binder) -> sql.Composable:
    """Within radius on the spheroid, behind a box the GiST index can use."""
    assert query.near is not None
    near = query.near
    dlat = near.radius_m / _M_PER_DEGREE
    cos_lat = math.cos(math.radians(min(abs(near.lat) + dlat, 90.0)))
    dlon = 180.0 if cos_lat < 1e-6 else min(near.radius_m / (_M_PER_DEGREE * cos_lat), 180.0)
    box = sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, 4326)").format(
        bind(near.lon - dlon),
        bind(max(near.lat - dlat, -90.0)),
        bind(near.lon + dlon),
        bind(min(near.lat + dlat, 90.0)),
    )
    return sql.SQL("({g} && {box} AND ST_DWithin({g}::geography, {pt}::geography, {r}))").format(
        g=geom, box=box, pt=_point(query, bind), r=bind(near.radius_m)
    )


def _order(layer: Layer, query: ItemsQuery) -> sql.Composable:
    keys: list[sql.Composable] = []
    for key in query.sortby:
        column = sql.Identifier(_DISTANCE_COLUMN if key.name == DISTANCE else key.name)
        keys.append(sql.SQL("{} {}").format(column, sql.SQL("DESC NULLS LAST" if key.descending else "ASC")))
    # The id breaks ties, so pages never overlap or skip a feature.
    keys.append(sql.Identifier(layer.id_column))
    return sql.SQL(", ").join(keys)


def _start(layer: Layer, query: ItemsQuery, condition: sql.Composable, bind: Binder) -> tuple[sql.Composable, int]:
    """Where the page starts: the page's WHERE condition and what OFFSET is left to skip.

    After a keyset (`next` links), the rows after the last id; for a plain offset on an unfiltered layer ordered by
    an indexed id, the id at that offset read from the index alone (no row is fetched for the rows skipped)."""
    ident = sql.Identifier(layer.id_column)
    if query.after is not None:
        return sql.SQL("{} AND {} > {}").format(condition, ident, bind(query.after)), 0
    if query.offset and query.keyset and not query.has_filters and layer.id_indexed:
        first = sql.SQL("(SELECT {id} FROM {table} ORDER BY {id} OFFSET {offset} LIMIT 1)").format(
            id=ident, table=layer.table, offset=bind(query.offset)
        )
        return sql.SQL("{} AND {} >= {}").format(condition, ident, first), 0
    return condition, query.offset


def build(layer: Layer, query: ItemsQuery, *, count_in_page: bool = True) -> ItemsSql:
    """The page and count statements of an items request (the page carries the count unless told not to)."""
    bind = Binder()
    condition = where(layer, query, bind)
    columns = list(dict.fromkeys([*layer.field_names, layer.id_column, layer.geometry_column]))
    selected: list[sql.Composable] = [sql.Identifier(c) for c in columns]
    stored_3857 = None
    if query.crs.srid == 3857 and layer.geometry_3857_column:
        stored_3857 = sql.Identifier(layer.geometry_3857_column)
        selected.append(stored_3857)
    output = crs_mod.from_storage(sql.Identifier(layer.geometry_column), query.crs, geometry_3857=stored_3857)
    extra: list[tuple[str, sql.Composable]] = []
    if query.near is not None:
        selected.append(
            sql.SQL("ST_Distance({}::geography, {}::geography) AS {}").format(
                sql.Identifier(layer.geometry_column), _point(query, bind), sql.Identifier(_DISTANCE_COLUMN)
            )
        )
        extra.append((DISTANCE_PROPERTY, sql.SQL("round({}::numeric, 2)").format(sql.Identifier(_DISTANCE_COLUMN))))
    count = sql.SQL("SELECT count(*) FROM {table} WHERE {where}").format(table=layer.table, where=condition)
    # The catalogue's count is exact for managed tables and tables whose triggers keep it: no count(*) then.
    needs_count = query.has_filters or not layer.count_kept
    kept = sql.SQL("(SELECT feature_count FROM {} WHERE id = {})").format(LAYERS_TABLE, bind(layer.id))
    page_where, offset = _start(layer, query, condition, bind)
    order = _order(layer, query)
    page = sql.SQL(
        "SELECT {feature}, {matched}, {id} FROM (SELECT {selected} FROM {table} WHERE {where} ORDER BY {order} "
        "LIMIT {limit} OFFSET {offset}) AS page ORDER BY {order}"
    ).format(
        feature=feature_json(
            layer,
            None if query.skip_geometry else output,
            digits=crs_mod.decimals(query.crs),
            extra=extra,
            names=query.select,
        ),
        matched=(sql.SQL("({})").format(count) if count_in_page else sql.SQL("NULL::bigint")) if needs_count else kept,
        id=sql.Identifier(layer.id_column),
        selected=sql.SQL(", ").join(selected),
        table=layer.table,
        where=page_where,
        order=order,
        limit=bind(query.limit),
        offset=bind(offset),
    )
    count_text = render(count)
    return ItemsSql(
        page=render(page),
        count=count_text,
        params=bind.params,
        count_params=bind.params_for(count_text),
        needs_count=needs_count,
        count_in_page=needs_count and count_in_page,
    )


# A strong entity tag of a stored row: it changes whenever any column changes, private ones included, so If-Match
# catches every concurrent write (and tells nothing about the private values). It is the MD5 of the row's text, in
# which geometries are hex EWKB (`row_to_json`, used before, writes each geometry as GeoJSON through PostGIS's cast:
# 27.6 µs a point row against 2.4 µs, over 200,000 rows); dates in that text follow DateStyle and TimeZone, which
# every pooled connection sets.
ROW_ETAG = sql.SQL("md5(t::text)")


def row_attributes(layer: Layer, row: sql.Composable) -> sql.Composable:
    """Every column of `row` (a row of the layer's table) but its geometries, as JSONB: what history keeps.

    The geometries are set to NULL before the row becomes JSON, then dropped: `to_jsonb` would otherwise convert each
    one to GeoJSON only to drop it (25 µs a point, 0.66 ms a polygon of 1,000 vertices, measured)."""
    drop = [layer.geometry_column, *([layer.geometry_3857_column] if layer.geometry_3857_column else [])]
    nulls = sql.Literal(json.dumps(dict.fromkeys(drop)))
    blank = sql.SQL("to_jsonb(jsonb_populate_record({}, {}::jsonb))").format(row, nulls)
    return sql.SQL(" - ").join([blank, *map(sql.Literal, drop)])


@dataclass
class Page:
    """A fetched page: features as GeoJSON text, the exact number matched, and the last feature's id."""

    features: list[str]
    number_matched: int
    last_id: Any = None


CATALOGUE_COUNT = render(sql.SQL("SELECT feature_count FROM {} WHERE id = {}").format(LAYERS_TABLE, Slot("id")))


async def catalogue_count(conn: AsyncConnection[Any], layer: Layer) -> int:
    """The layer's feature count as the catalogue keeps it: exact, since loads and edit triggers maintain it."""
    cur = await conn.execute(CATALOGUE_COUNT, {"id": layer.id})
    row = await cur.fetchone()
    return int(row[0]) if row else layer.feature_count


async def count(conn: AsyncConnection[Any], statements: ItemsSql, layer: Layer) -> int:
    """The exact number of features the request matches."""
    if not statements.needs_count:
        return await catalogue_count(conn, layer)
    cur = await conn.execute(statements.count, statements.count_params)
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def fetch_page(
    conn: AsyncConnection[Any], layer: Layer, query: ItemsQuery, statements: ItemsSql | None = None
) -> Page:
    """One page, fetched whole (for pages up to STREAM_ABOVE features); every row carries the number matched."""
    statements = statements or build(layer, query)
    cur = await conn.execute(statements.page, statements.params)
    rows = await cur.fetchall()
    if rows and rows[0][1] is not None:
        matched = int(rows[0][1])
    elif not rows and query.offset == 0 and query.after is None and statements.needs_count:
        matched = 0  # nothing matches at all
    else:  # no row carried the count: the page starts past the end
        matched = await count(conn, statements, layer)
    return Page(features=[row[0] for row in rows], number_matched=matched, last_id=rows[-1][2] if rows else None)


async def stream_page(
    conn: AsyncConnection[Any], statements: ItemsSql, *, chunk_rows: int = CHUNK_ROWS
) -> AsyncIterator[list[str]]:
    """The page's features a chunk at a time, from a server-side cursor (one snapshot, bounded memory)."""
    async with conn.transaction():
        async with conn.cursor(name="items") as cur:
            await cur.execute(statements.page, statements.params)
            while rows := await cur.fetchmany(chunk_rows):
                yield [row[0] for row in rows]


def id_value(layer: Layer, text: str) -> Any | None:
    """A feature id from a URL, typed like the id column; None when it cannot be one (so: not found)."""
    data_type = next((f.data_type for f in layer.fields if f.name == layer.id_column), None)
    kind = kind_of(data_type) if data_type else ("integer" if layer.id_column == "fid" else "string")
    if "\x00" in text or len(text) > 256:
        return None
    if kind == "integer":
        stripped = text.strip()
        if not stripped.lstrip("-").isdigit() or not -(2**63) <= int(stripped) < 2**63:
            return None
        return int(stripped)
    return text if kind == "string" else None


def feature_statement(layer: Layer, fid: Any, crs: crs_mod.Crs) -> tuple[bytes, dict[str, Any]]:
    """The statement for one feature by id."""
    output = crs_mod.from_storage(
        sql.Identifier(layer.geometry_column),
        crs,
        geometry_3857=sql.Identifier(layer.geometry_3857_column) if layer.geometry_3857_column else None,
    )
    bind = Binder()
    statement = sql.SQL("SELECT {feature}, {etag} FROM {table} AS t WHERE {id} = {fid}").format(
        feature=feature_json(layer, output, digits=crs_mod.decimals(crs)),
        etag=ROW_ETAG,
        table=layer.table,
        id=sql.Identifier(layer.id_column),
        fid=bind(fid),
    )
    return render(statement), bind.params


async def fetch_feature(conn: AsyncConnection[Any], layer: Layer, fid: Any, crs: crs_mod.Crs) -> tuple[str, str] | None:
    """One feature as GeoJSON text and its entity tag, or None."""
    statement, params = feature_statement(layer, fid, crs)
    cur = await conn.execute(statement, params)
    row = await cur.fetchone()
    return (str(row[0]), f'"{row[1]}"') if row else None
