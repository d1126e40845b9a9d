"""SQL of the near-me searches, composed from catalogue names only; every value is a named slot.

Statements are rendered once per layer version (the caller caches them) and run with bound values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from psycopg import sql

from layers.catalogue.records import Layer
from layers.sqlcompose import Slot, render

EVENTS_CATEGORY = "events"

Rel = Literal["lt", "eq", "gt"] | None
_ME = sql.SQL("(SELECT ST_SetSRID(ST_MakePoint({}::float8, {}::float8), 4326))").format(Slot("lon"), Slot("lat"))
_ME_GEOG = sql.SQL("(SELECT ST_SetSRID(ST_MakePoint({}::float8, {}::float8), 4326)::geography)").format(
    Slot("lon"), Slot("lat")
)
_PAIRS_PER_OBJECT = 50  # json_build_object takes at most 100 arguments


def is_events(layer: Layer) -> bool:
    """True for an events layer with a public end time: ended events are left out, current ones marked."""
    return layer.category == EVENTS_CATEGORY and layer.public_field(layer.time_end_field) is not None


def distinct_sql(layer: Layer, column: str) -> bytes:
    """Distinct non-null values of a public column, as text, at most `cap` of them."""
    return render(
        sql.SQL("SELECT DISTINCT {c}::text FROM {table} AS t WHERE {c} IS NOT NULL LIMIT {cap}").format(
            c=_col(column), table=layer.table, cap=Slot("cap")
        )
    )


def _col(name: str) -> sql.Composed:
    return sql.SQL("t.{}").format(sql.Identifier(name))


def properties_json(layer: Layer, alias: str | None = None) -> sql.Composable:
    """The public fields as one JSON object, from table `t` or, with `alias`, from its columns c0, c1, ..."""
    pairs = [
        sql.SQL("{}, {}").format(sql.Literal(name), sql.SQL(f"{alias}.c{i}") if alias else _col(name))
        for i, name in enumerate(layer.field_names)
    ]
    if not pairs:
        return sql.SQL("'{}'::json")
    chunks = [sql.SQL(", ").join(pairs[i : i + _PAIRS_PER_OBJECT]) for i in range(0, len(pairs), _PAIRS_PER_OBJECT)]
    if len(chunks) == 1:
        return sql.SQL("json_build_object({})").format(chunks[0])
    return sql.SQL(" || ").join(sql.SQL("jsonb_build_object({})").format(c) for c in chunks)


def _box(radius: sql.Composable) -> sql.Composed:
    """A box in degrees that surely holds every point within `radius` metres: metres per degree are taken at their
    smallest (latitude at the equator, longitude at the box's poleward edge), plus 0.1 %."""
    dlat = sql.SQL("({r} * 1.001 / 110574.0 + 1e-9)").format(r=radius)
    dlon = sql.SQL("({r} * 1.001 / (111319.0 * cos(radians(least(89.99, abs({lat}::float8) + {dlat})))) + 1e-9)")
    return sql.SQL("ST_Expand({me}, {dlon}, {dlat})").format(
        me=_ME, dlon=dlon.format(r=radius, dlat=dlat, lat=Slot("lat")), dlat=dlat
    )


def _filters(layer: Layer, cats: bool, open_now: bool) -> tuple[sql.Composable, sql.Composable]:
    """The layer's WHERE condition (categories, events not ended, open now) and its `happening now` expression."""
    filters: list[sql.Composable] = []
    category_field, hours_field = (
        layer.public_field(layer.category_field),
        layer.public_field(layer.opening_hours_field),
    )
    if cats and category_field:
        filters.append(sql.SQL("{}::text = ANY({}::text[])").format(_col(category_field), Slot("categories")))
    happening: sql.Composable = sql.SQL("NULL::boolean")
    if is_events(layer):
        end, at = _col(layer.time_end_field or ""), Slot("at")
        filters.append(sql.SQL("({end} IS NULL OR {end} > {at}::timestamptz)").format(end=end, at=at))
        start = layer.public_field(layer.time_start_field)
        started = sql.SQL("coalesce({} <= {}::timestamptz, true)").format(_col(start), at) if start else sql.SQL("true")
        happening = sql.SQL("({} AND coalesce({} > {}::timestamptz, true))").format(started, end, at)
    if open_now and hours_field:
        filters.append(sql.SQL("{}::text = ANY({}::text[])").format(_col(hours_field), Slot("open_schedules")))
    return (sql.SQL(" AND ").join(filters) if filters else sql.SQL("true")), happening


def _bytewise(ident: sql.Composable) -> sql.Composable:
    """A text id in the "C" collation (code point order for UTF-8), for ranking and cursor comparisons."""
    return sql.SQL('({}::text COLLATE "C")').format(ident)


def _after(rel: Rel, distance: sql.Composable, ident: sql.Composable) -> sql.Composable:
    """Rows that sort after the cursor: equal distances come after it only in a later layer, or with a larger id."""
    if rel is None:
        return sql.SQL("true")
    template = {
        "lt": "{d} > {ad}::float8",
        "eq": "({d} > {ad}::float8 OR ({d} = {ad}::float8 AND {id} > {aid}))",
        "gt": "{d} >= {ad}::float8",
    }[rel]
    return sql.SQL(template).format(d=distance, id=ident, ad=Slot("after_d"), aid=Slot("after_id"))


def layer_sql(branch: int, layer: Layer, knn: bool, cats: bool, open_now: bool, rel: Rel, lim: int) -> sql.Composed:
    """One layer's branch of the search (rows tagged with `branch`): filtered, bounded, geodesically ranked."""
    geom, ident = _col(layer.geometry_column), _col(layer.id_column)
    # Equal distances go by id, in the order the page is merged in (Python's: numbers as numbers, text by code point):
    # text ids are ranked and compared byte by byte, whatever the column's collation, or a page could end on a
    # different id than the one the next page's statement starts after. Other ids keep their own type and order.
    c_key = sql.SQL("c.k")
    text = layer.id_kind == "string"
    order, c_order = (_bytewise(ident), _bytewise(c_key)) if text else (ident, c_key)
    where, happening = _filters(layer, cats, open_now)
    hours_field = layer.public_field(layer.opening_hours_field)
    # Stage 1: the `lim` nearest in index order (inside the radius box, if any) all lie within their largest
    # geodesic distance, so the true `lim` nearest do too; with a radius, the smaller of the two bounds stage 2.
    radius = sql.SQL("{}::float8").format(Slot("radius_m"))
    radius_box = sql.SQL("true") if knn else sql.SQL("{} && {}").format(geom, _box(radius))
    bound = sql.SQL("(SELECT r FROM bound)") if knn else sql.SQL("least((SELECT r FROM bound), {})").format(radius)
    distance = sql.SQL("ST_Distance({}::geography, {})").format(geom, _ME_GEOG)
    schedule = sql.SQL("{}::text").format(_col(hours_field)) if hours_field else sql.SQL("NULL::text")
    columns = sql.SQL("").join(sql.SQL(f", {{}} AS c{i}").format(_col(n)) for i, n in enumerate(layer.field_names))
    # Stage 2 computes each candidate's distance once (OFFSET 0 keeps it a subquery), ranks, and only the page's
    # rows are turned into JSON.
    return sql.SQL(
        "(WITH bound AS MATERIALIZED (SELECT max(ST_Distance(k.g::geography, {me_geog})) AS r FROM "
        "(SELECT {geom} AS g FROM {table} AS t WHERE {radius_box} AND {where} AND {after_t} "
        "ORDER BY {geom} <-> {me} LIMIT {lim}::int8) AS k) "
        "SELECT {branch}, to_jsonb(s.k)::text, s.m, "
        "degrees(ST_Azimuth({me_geog}, ST_ClosestPoint(s.g, {me})::geography)), "
        "ST_AsGeoJSON(s.g), ({props})::text, s.h, {has_hours}, s.sched FROM ("
        "SELECT c.* FROM (SELECT {id} AS k, {geom} AS g, {distance} AS m, {happening} AS h, {schedule} AS sched"
        "{columns} FROM {table} AS t WHERE {geom} && {box} AND {where} OFFSET 0) AS c "
        "WHERE c.m <= {bound} AND {after_c} ORDER BY c.m, {c_order} LIMIT {lim}::int8) AS s)"
    ).format(
        me_geog=_ME_GEOG, geom=geom, table=layer.table, radius_box=radius_box, where=where,
        after_t=_after(rel, distance, order), me=_ME, c_order=c_order, lim=sql.Literal(lim), branch=sql.Literal(branch),
        props=properties_json(layer, "s"), has_hours=sql.Literal(hours_field is not None), id=ident, distance=distance,
        happening=happening, schedule=schedule, columns=columns, box=_box(bound), bound=bound,
        after_c=_after(rel, sql.SQL("c.m"), c_order),
    )  # fmt: skip


def search_sql(parts: tuple[tuple[Layer, bool, bool, bool, Rel], ...], lim: int) -> bytes:
    """The search across layers for `lim` rows each: one branch per layer, as `layer_sql` builds it.

    `lim` is written into the statement, not bound: with a bound LIMIT, PostgreSQL re-planned the prepared
    statement on every run (a custom plan each time), which cost about 40 % of its throughput (pgbench)."""
    return render(sql.SQL(" UNION ALL ").join(layer_sql(i, *part, lim) for i, part in enumerate(parts)))


def here_sql(layers: Sequence[Layer]) -> bytes:
    """The features of each (boundary) layer that contain the point."""
    branches = [
        sql.SQL(
            "(SELECT {branch}, to_jsonb({id})::text, ST_AsGeoJSON({geom}), ({props})::text FROM {table} AS t "
            "WHERE ST_Intersects({geom}, {me}) ORDER BY {id} LIMIT 100)"
        ).format(
            branch=sql.Literal(branch),
            id=_col(layer.id_column),
            geom=_col(layer.geometry_column),
            props=properties_json(layer),
            table=layer.table,
            me=_ME,
        )
        for branch, layer in enumerate(layers)
    ]
    return render(sql.SQL(" UNION ALL ").join(branches))
