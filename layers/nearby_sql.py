"""SQL of the near-me searches, composed from catalogue names only; every value is a placeholder.

Statements are rendered to text once per layer version (the caller caches them) and run with bound values.
`%` in quoted names is doubled, since the text is later read for %(name)s placeholders.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from psycopg import sql

from layers.catalog import Layer

EVENTS_CATEGORY = "events"

Rel = Literal["lt", "eq", "gt"] | None
_ME = sql.SQL("(SELECT ST_SetSRID(ST_MakePoint(%(lon)s::float8, %(lat)s::float8), 4326))")
_ME_GEOG = sql.SQL("(SELECT ST_SetSRID(ST_MakePoint(%(lon)s::float8, %(lat)s::float8), 4326)::geography)")
_PAIRS_PER_OBJECT = 50  # json_build_object takes at most 100 arguments


def public_field(layer: Layer, name: str | None) -> str | None:
    """`name` when it is one of the layer's public fields, else None."""
    # A field the manifest keeps private is never filtered on: filtering would be a yes/no oracle on its values.
    return name if name is not None and name in layer.field_names else None


def is_events(layer: Layer) -> bool:
    """True for an events layer with a public end time: ended events are left out, current ones marked."""
    return layer.category == EVENTS_CATEGORY and public_field(layer, layer.time_end_field) is not None


def distinct_sql(layer: Layer, column: str) -> str:
    """Distinct non-null values of a public column, as text, at most %(cap)s of them."""
    return (
        sql.SQL("SELECT DISTINCT {c}::text FROM {table} AS t WHERE {c} IS NOT NULL LIMIT %(cap)s")
        .format(c=_col(column), table=_table(layer))
        .as_string(None)
    )


def _quoted(part: sql.Composable) -> sql.SQL:
    """A quoted name or literal with `%` doubled: the statement is later read for %(name)s placeholders."""
    return sql.SQL(part.as_string(None).replace("%", "%%"))


def _col(name: str) -> sql.Composed:
    return sql.SQL("t.{}").format(_quoted(sql.Identifier(name)))


def _table(layer: Layer) -> sql.SQL:
    return _quoted(sql.Identifier(layer.table_schema, layer.table_name))


def _properties(layer: Layer, alias: str | None = None) -> sql.Composable:
    """The public fields as one JSON object, from table `t` or, with `alias`, from its columns c0, c1, ..."""
    pairs = [
        sql.SQL("{}, {}").format(_quoted(sql.Literal(name)), sql.SQL(f"{alias}.c{i}") if alias else _col(name))
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
    dlon = sql.SQL("({r} * 1.001 / (111319.0 * cos(radians(least(89.99, abs(%(lat)s::float8) + {dlat})))) + 1e-9)")
    return sql.SQL("ST_Expand({me}, {dlon}, {dlat})").format(me=_ME, dlon=dlon.format(r=radius, dlat=dlat), dlat=dlat)


def layer_sql(branch: int, layer: Layer, knn: bool, cats: bool, open_now: bool, rel: Rel) -> sql.Composed:
    """One layer's branch of the search (rows tagged with `branch`): filtered, bounded, geodesically ranked."""
    geom, ident, table = _col(layer.geometry_column), _col(layer.id_column), _table(layer)
    filters: list[sql.Composable] = []
    category_field, hours_field = (
        public_field(layer, layer.category_field),
        public_field(layer, layer.opening_hours_field),
    )
    if cats and category_field:
        filters.append(sql.SQL("{}::text = ANY(%(categories)s::text[])").format(_col(category_field)))
    happening: sql.Composable = sql.SQL("NULL::boolean")
    if is_events(layer):
        end = _col(layer.time_end_field or "")
        filters.append(sql.SQL("({end} IS NULL OR {end} > %(at)s::timestamptz)").format(end=end))
        start = public_field(layer, layer.time_start_field)
        started = sql.SQL("coalesce({} <= %(at)s::timestamptz, true)").format(_col(start)) if start else sql.SQL("true")
        happening = sql.SQL("({} AND coalesce({} > %(at)s::timestamptz, true))").format(started, end)
    if open_now and hours_field:
        filters.append(sql.SQL("{}::text = ANY(%(open_schedules)s::text[])").format(_col(hours_field)))
    after = sql.SQL("true")
    if rel is not None:
        after = sql.SQL(
            {
                "lt": "{d} > %(after_d)s::float8",
                "eq": "({d} > %(after_d)s::float8 OR ({d} = %(after_d)s::float8 AND {id} > %(after_id)s))",
                "gt": "{d} >= %(after_d)s::float8",
            }[rel]
        )
    where = sql.SQL(" AND ").join(filters) if filters else sql.SQL("true")
    # Stage 1: the `lim` nearest in index order (inside the radius box, if any) all lie within their largest
    # geodesic distance, so the true `lim` nearest do too; with a radius, the smaller of the two bounds stage 2.
    radius_box = sql.SQL("true") if knn else sql.SQL("{} && {}").format(geom, _box(sql.SQL("%(radius_m)s::float8")))
    bound = sql.SQL("(SELECT r FROM bound)" if knn else "least((SELECT r FROM bound), %(radius_m)s::float8)")
    distance = sql.SQL("ST_Distance({}::geography, {})").format(geom, _ME_GEOG)
    schedule = sql.SQL("{}::text").format(_col(hours_field)) if hours_field else sql.SQL("NULL::text")
    columns = sql.SQL("").join(sql.SQL(f", {{}} AS c{i}").format(_col(n)) for i, n in enumerate(layer.field_names))
    # Stage 2 computes each candidate's distance once (OFFSET 0 keeps it a subquery), ranks, and only the page's
    # rows are turned into JSON.
    return sql.SQL(
        "(WITH bound AS MATERIALIZED (SELECT max(ST_Distance(k.g::geography, {me_geog})) AS r FROM "
        "(SELECT {geom} AS g FROM {table} AS t WHERE {radius_box} AND {where} AND {after_t} "
        "ORDER BY {geom} <-> {me} LIMIT %(lim)s::int8) AS k) "
        "SELECT {branch}, to_jsonb(s.k)::text, s.m, "
        "degrees(ST_Azimuth({me_geog}, ST_ClosestPoint(s.g, {me})::geography)), "
        "ST_AsGeoJSON(s.g), ({props})::text, s.h, {has_hours}, s.sched FROM ("
        "SELECT c.* FROM (SELECT {id} AS k, {geom} AS g, {distance} AS m, {happening} AS h, {schedule} AS sched"
        "{columns} FROM {table} AS t WHERE {geom} && {box} AND {where} OFFSET 0) AS c "
        "WHERE c.m <= {bound} AND {after_c} ORDER BY c.m, c.k LIMIT %(lim)s::int8) AS s)"
    ).format(
        me_geog=_ME_GEOG, geom=geom, table=table, radius_box=radius_box, where=where,
        after_t=after.format(d=distance, id=ident), me=_ME, branch=sql.Literal(branch), props=_properties(layer, "s"),
        has_hours=sql.Literal(hours_field is not None), id=ident, distance=distance, happening=happening,
        schedule=schedule, columns=columns, box=_box(bound), bound=bound,
        after_c=after.format(d=sql.SQL("c.m"), id=sql.SQL("c.k")),
    )  # fmt: skip


def search_sql(parts: tuple[tuple[Layer, bool, bool, bool, Rel], ...]) -> str:
    return sql.SQL(" UNION ALL ").join(layer_sql(i, *part) for i, part in enumerate(parts)).as_string(None)


def here_sql(layers: Sequence[Layer]) -> str:
    branches = [
        sql.SQL(
            "(SELECT {branch}, to_jsonb({id})::text, ST_AsGeoJSON({geom}), ({props})::text FROM {table} AS t "
            "WHERE ST_Intersects({geom}, {me}) ORDER BY {id} LIMIT 100)"
        ).format(
            branch=sql.Literal(branch),
            id=_col(layer.id_column),
            geom=_col(layer.geometry_column),
            props=_properties(layer),
            table=_table(layer),
            me=_ME,
        )
        for branch, layer in enumerate(layers)
    ]
    return sql.SQL(" UNION ALL ").join(branches).as_string(None)
