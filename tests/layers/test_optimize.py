"""`publish --optimize`: a stored generated EPSG:3857 column and its index on the table itself, used by the tiles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from layers.catalogue.visibility import ANONYMOUS
from layers.errors import IngestError
from layers.ingest.in_place import publish_table
from layers.ingest.optimize import optimize, ordered_by, stored_index_name
from tests.support.layers import drop_layer, fresh_registry, manifest
from tiles.source import LayerTileSource

LAYER = "optimized pts"


def _table(conn: psycopg.Connection, name: str) -> None:
    conn.execute(f"DROP TABLE IF EXISTS public.{name} CASCADE")
    conn.execute(
        f"CREATE TABLE public.{name} AS SELECT i AS id, 'p' || i AS label, "  # noqa: S608 - fixed test names
        "ST_SetSRID(ST_MakePoint(-114.1 + i / 100000.0, 51.0 + i / 200000.0), 4326) AS geom "
        "FROM generate_series(1, 3000) AS i ORDER BY md5(i::text)"  # written in no spatial order
    )


def _scatter(conn: psycopg.Connection, name: str) -> float:
    """How far apart, on average, rows stored next to each other are (degrees)."""
    row = conn.execute(
        f"SELECT avg(d) FROM (SELECT ST_Distance(geom, lag(geom) OVER (ORDER BY ctid)) AS d "  # noqa: S608
        f"FROM public.{name}) AS s"
    ).fetchone()
    return float(row[0]) if row else 0.0


def test_optimize_adds_a_generated_column_and_index_and_the_tiles_use_them(
    database_url: str, conn: psycopg.Connection
) -> None:
    _table(conn, "opt_points")
    publish_table(database_url, manifest(LAYER, ["label"], id_field="id", source={"table": "public.opt_points"}))
    before = fresh_registry(conn).resolve(LAYER, ANONYMOUS)
    assert before.geometry_3857_column is None and LayerTileSource(before).affine_zooms
    scattered = _scatter(conn, "opt_points")
    stages: list[tuple[str, int, int]] = []
    assert optimize(database_url, LAYER, progress=lambda *s: stages.append(s)) == "geom_3857"
    finished = [stage for stage, done, total in stages if done == total]
    assert list(dict.fromkeys(finished)) == ["column", "index", "analyze", "order"]
    assert stages[-1] == ("order", 1, 1)
    # The rows are now stored in the index's order: neighbours on disk are neighbours on the map.
    assert _scatter(conn, "opt_points") < scattered / 20, (scattered, _scatter(conn, "opt_points"))
    clustered = conn.execute(
        "SELECT indisclustered FROM pg_index WHERE indrelid = 'public.opt_points'::regclass AND indisclustered"
    ).fetchall()
    assert clustered == [(True,)]
    after = fresh_registry(conn).resolve(LAYER, ANONYMOUS)
    assert after.geometry_3857_column == "geom_3857" and after.version == before.version + 1
    source = LayerTileSource(after)
    assert not source.affine_zooms and b'"geom_3857" &&' in source.sql_for(14)
    assert "geom_3857" not in after.field_names
    generated = conn.execute(
        "SELECT attgenerated FROM pg_attribute WHERE attrelid = 'public.opt_points'::regclass AND attname = 'geom_3857'"
    ).fetchone()
    indexed = conn.execute(
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'opt_points' AND indexdef LIKE '%gist (geom_3857)%'"
    ).fetchone()
    assert generated == ("s",) and indexed == (1,)
    # An edit keeps the stored column current by itself.
    conn.execute(
        "INSERT INTO public.opt_points (id, label, geom) VALUES (9999, 'new', ST_SetSRID(ST_MakePoint(0, 0), 4326))"
    )
    assert conn.execute("SELECT ST_AsText(geom_3857) FROM public.opt_points WHERE id = 9999").fetchone() == (
        "POINT(0 0)",
    )
    # Published again (a new manifest version), the layer keeps its stored column; optimizing again does nothing.
    publish_table(database_url, manifest(LAYER, ["label"], id_field="id", source={"table": "public.opt_points"}))
    assert fresh_registry(conn).resolve(LAYER, ANONYMOUS).geometry_3857_column == "geom_3857"
    assert optimize(database_url, LAYER) is None
    # A layer optimized before the rows were ordered (or whose order was dropped) gets them ordered by a run again.
    conn.execute("ALTER TABLE public.opt_points SET WITHOUT CLUSTER")
    assert ordered_by(database_url, "public", "opt_points") is None
    assert optimize(database_url, LAYER) is None
    assert str(ordered_by(database_url, "public", "opt_points")).endswith("_3857_gist")
    drop_layer(database_url, LAYER, "public.opt_points")


def test_a_view_cannot_be_optimized(database_url: str, conn: psycopg.Connection) -> None:
    _table(conn, "opt_base")
    conn.execute("CREATE VIEW public.opt_view AS SELECT * FROM public.opt_base")
    publish_table(database_url, manifest("opt view", ["label"], id_field="id", source={"table": "public.opt_view"}))
    with pytest.raises(IngestError, match="only a table published in place can be optimized"):
        optimize(database_url, "opt view")
    assert fresh_registry(conn).resolve("opt view", ANONYMOUS).geometry_3857_column is None
    drop_layer(database_url, "opt view")
    conn.execute("DROP TABLE public.opt_base CASCADE")


def test_the_command_line_publishes_optimizes_and_shows_it(
    database_url: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    _table(conn, "opt_cli")
    path = tmp_path / "cli.yaml"
    data = manifest("opt cli", ["label"], id_field="id", source={"table": "public.opt_cli"}).model_dump(mode="json")
    path.write_text(json.dumps(data))
    env = {**os.environ, "GEOSERVER_DATABASE_URL": database_url}
    geoserver = [sys.executable, "-m", "geoserver"]
    done = subprocess.run([*geoserver, "publish", str(path), "--optimize"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (
        "opt cli: ordering the rows by location" in done.stderr
        and "tiles now read the stored column 'geom_3857'" in done.stderr
    )
    shown = subprocess.run([*geoserver, "layers", "show", "opt cli"], env=env, capture_output=True, text=True)
    source = json.loads(shown.stdout)["source"]
    assert source["optimized"] is True and source["geometry_3857_column"] == "geom_3857"
    assert str(source["rows_ordered_by"]).endswith("_3857_gist"), source
    assert source["kind"] == "table published in place" and "optimizing" not in source
    drop_layer(database_url, "opt cli", "public.opt_cli")


def test_an_index_left_invalid_by_an_interrupted_run_is_built_again(
    database_url: str, conn: psycopg.Connection
) -> None:
    _table(conn, "opt_broken")
    publish_table(database_url, manifest("opt broken", ["label"], id_field="id", source={"table": "public.opt_broken"}))
    # What an interrupted CREATE INDEX CONCURRENTLY leaves: the index, marked invalid (CLUSTER refuses those).
    column = "geom_3857"
    conn.execute(
        f"ALTER TABLE public.opt_broken ADD COLUMN {column} geometry(Geometry, 3857) "
        "GENERATED ALWAYS AS (ST_Transform(geom, 3857)) STORED"
    )
    index = stored_index_name("public", "opt_broken", column)
    conn.execute(f'CREATE INDEX "{index}" ON public.opt_broken USING gist ({column})')
    conn.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", (f'public."{index}"',))
    assert optimize(database_url, "opt broken") == column
    valid = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = %s::regclass", (f'public."{index}"',))
    assert valid.fetchone() == (True,) and ordered_by(database_url, "public", "opt_broken") == index
    drop_layer(database_url, "opt broken", "public.opt_broken")


def test_a_table_with_a_hostile_name_is_optimized_and_reported_ordered(
    database_url: str, conn: psycopg.Connection
) -> None:
    # Quotes, a dot (in the schema: a manifest's table is split at its last dot), a semicolon, spaces and a
    # comment marker: every name reaches SQL as an identifier.
    schema, name = "opt 'odd\".sch", 'opt "pts"; drop table x; --'
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} AS SELECT i AS id, 'p' || i AS label, "
            "ST_SetSRID(ST_MakePoint(-114.1 + i / 100000.0, 51.0 + i / 200000.0), 4326) AS geom "
            "FROM generate_series(1, 500) AS i ORDER BY md5(i::text)"
        ).format(sql.Identifier(schema, name))
    )
    layer = "opt hostile"
    publish_table(database_url, manifest(layer, ["label"], id_field="id", source={"table": f"{schema}.{name}"}))
    assert ordered_by(database_url, schema, name) is None
    assert optimize(database_url, layer) == "geom_3857"
    assert ordered_by(database_url, schema, name) == stored_index_name(schema, name, "geom_3857")
    optimized = fresh_registry(conn).resolve(layer, ANONYMOUS)
    assert optimized.geometry_3857_column == "geom_3857"
    # The same names through the command line's report.
    shown = subprocess.run(
        [sys.executable, "-m", "geoserver", "layers", "show", layer],
        env={**os.environ, "GEOSERVER_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(shown.stdout)["source"]["rows_ordered_by"] == stored_index_name(schema, name, "geom_3857")
    drop_layer(database_url, layer)
    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
