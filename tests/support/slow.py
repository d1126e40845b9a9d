"""A layer that is slow to read, on purpose: to hold connections, time queries out and watch them being cancelled."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
from psycopg import sql

from layers.ingest.in_place import publish_table
from tests.support.layers import drop_layer, manifest

# Sleeps only for the server's own connections (their application_name starts with "geoserver-"), so publishing
# the view (which reads it to count and measure it) and the tests' own checks stay fast.
_FUNCTION = """
CREATE OR REPLACE FUNCTION public.slowly(seconds float8) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF current_setting('application_name') LIKE 'geoserver-%' THEN
        PERFORM pg_sleep(seconds);
    END IF;
    RETURN true;
END
$$
"""


@contextlib.contextmanager
def slow_layer(database_url: str, layer_id: str, *, rows: int = 20, seconds_per_row: float = 0.5) -> Iterator[str]:
    """Publish a view whose every row takes `seconds_per_row` to read; yields the table name it was made from."""
    base = f"{layer_id.replace(' ', '_')}_base"
    view = f"{layer_id.replace(' ', '_')}_view"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(_FUNCTION)
        conn.execute(sql.SQL("DROP VIEW IF EXISTS public.{}").format(sql.Identifier(view)))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS public.{}").format(sql.Identifier(base)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE public.{} AS SELECT g AS id, 'row ' || g AS name, "
                "ST_SetSRID(ST_MakePoint(-114.07 + g / 1000.0, 51.04), 4326)::geometry(Point, 4326) AS geom "
                "FROM generate_series(1, {}) AS g"
            ).format(sql.Identifier(base), sql.Literal(rows))
        )
        conn.execute(
            sql.SQL("CREATE VIEW public.{} AS SELECT id, name, geom FROM public.{} WHERE public.slowly({})").format(
                sql.Identifier(view), sql.Identifier(base), sql.Literal(seconds_per_row)
            )
        )
    publish_table(database_url, manifest(layer_id, ["id", "name"], id_field="id", source={"table": f"public.{view}"}))
    try:
        yield view
    finally:
        drop_layer(database_url, layer_id)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP VIEW IF EXISTS public.{}").format(sql.Identifier(view)))
            conn.execute(sql.SQL("DROP TABLE IF EXISTS public.{}").format(sql.Identifier(base)))


def active_queries(database_url: str, needle: str) -> int:
    """How many of the server's backends are running a statement that mentions `needle`."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'geoserver-%%' "
            "AND state = 'active' AND query LIKE %s",
            [f"%{needle}%"],
        ).fetchone()
    return int(row[0]) if row else 0
