"""SQL for reading a layer's features, built from catalogue names only and bound values."""

from __future__ import annotations

from psycopg import sql

from layers.catalog import Layer


def features_query(layer: Layer, *, limit: int, offset: int = 0) -> tuple[sql.Composed, dict[str, int]]:
    """Public fields, id and GeoJSON geometry of a page of features, in id order."""
    query = sql.SQL(
        "SELECT {id} AS id, ST_AsGeoJSON({geom})::json AS geometry, {props} AS properties "
        "FROM {table} ORDER BY {id} LIMIT %(limit)s OFFSET %(offset)s"
    ).format(
        id=sql.Identifier(layer.id_column),
        geom=sql.Identifier(layer.geometry_column),
        props=_properties(layer),
        table=layer.table,
    )
    return query, {"limit": limit, "offset": offset}


def _properties(layer: Layer) -> sql.Composable:
    """A JSON object of the public fields. json_build_object takes at most 100 arguments, so chunks merge."""
    pairs = [sql.SQL("{}, {}").format(sql.Literal(name), sql.Identifier(name)) for name in layer.field_names]
    if not pairs:
        return sql.SQL("'{}'::jsonb")
    chunks = [sql.SQL(", ").join(pairs[i : i + 50]) for i in range(0, len(pairs), 50)]
    return sql.SQL(" || ").join(sql.SQL("jsonb_build_object({})").format(chunk) for chunk in chunks)
