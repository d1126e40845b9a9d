"""What history keeps of a row, and a feature's entity tag, without converting geometries to GeoJSON."""

from __future__ import annotations

import psycopg
from psycopg import sql

from layers.queries.features import ROW_ETAG, row_attributes
from layers.sqlcompose import render
from tests.support.layers import fresh_registry


def test_history_keeps_every_column_but_the_geometries(conn: psycopg.Connection, demo_city: dict[str, str]) -> None:
    registry = fresh_registry(conn)
    layers = [one for one in registry.all_layers() if one.geometry_3857_column]
    assert layers, "the demo City has layers with a stored EPSG:3857 column"
    for layer in layers:
        drop = sql.SQL(" - ").join(
            [sql.SQL("to_jsonb(t)"), sql.Literal(layer.geometry_column), sql.Literal(layer.geometry_3857_column)]
        )
        statement = sql.SQL("SELECT count(*), count(*) FILTER (WHERE {} IS DISTINCT FROM {}) FROM {} AS t").format(
            row_attributes(layer, sql.Identifier("t")), drop, layer.table
        )
        rows, differing = conn.execute(render(statement)).fetchone() or (0, 0)
        assert rows > 0 and differing == 0, layer.id


def test_a_features_tag_changes_with_its_geometry_alone(conn: psycopg.Connection, demo_city: dict[str, str]) -> None:
    layer = next(one for one in fresh_registry(conn).all_layers() if one.geometry_type.endswith("Point"))
    g = sql.Identifier(layer.geometry_column)
    tag = render(sql.SQL("SELECT {} FROM {} AS t ORDER BY {} LIMIT 1").format(
        ROW_ETAG, layer.table, sql.Identifier(layer.id_column)))  # fmt: skip
    first = sql.SQL("(SELECT {} FROM {} ORDER BY {} LIMIT 1)").format(
        sql.Identifier(layer.id_column), layer.table, sql.Identifier(layer.id_column)
    )
    move = sql.SQL("UPDATE {} SET {} = ST_Translate({}, 1e-7, 0) WHERE {} = {}").format(
        layer.table, g, g, sql.Identifier(layer.id_column), first
    )
    with conn.transaction(force_rollback=True):
        before = conn.execute(tag).fetchone()
        assert conn.execute(tag).fetchone() == before  # stable
        conn.execute(render(move))
        assert conn.execute(tag).fetchone() != before
