"""Publishing tables in place: columns without an SRID typmod (as CREATE TABLE AS leaves them) read it from the data."""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg import sql

from layers.catalogue.visibility import ANONYMOUS
from layers.errors import IngestError
from layers.ingest.in_place import publish_table
from tests.support.layers import drop_layer, fresh_registry, manifest


def _untyped(conn: psycopg.Connection, table: str, geometries: list[str]) -> None:
    """A table made the way a GIS team often makes one: CREATE TABLE AS, so `geom` is a bare `geometry`."""
    name = sql.Identifier("public", table)
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
    values = sql.SQL(", ").join(
        sql.SQL("({}, {}, ST_GeomFromEWKT({}))").format(i + 1, f"name {i}", g) for i, g in enumerate(geometries)
    )
    conn.execute(sql.SQL('CREATE TABLE {} AS SELECT * FROM (VALUES {}) AS v (id, "Name", geom)').format(name, values))
    typmod = conn.execute("SELECT srid, type FROM geometry_columns WHERE f_table_name = %s", [table]).fetchone()
    assert typmod == (0, "GEOMETRY")  # nothing declared: the data must tell


def _publish(database_url: str, layer_id: str, table: str) -> None:
    publish_table(database_url, manifest(layer_id, ["Name"], id_field="id", source={"table": f"public.{table}"}))


def test_a_table_without_typmod_is_published_with_the_srid_and_type_of_its_rows(
    database_url: str, conn: psycopg.Connection
) -> None:
    _untyped(conn, "Untyped Polys", ["SRID=4326;POLYGON((-114.1 51,-114 51,-114 51.1,-114.1 51))"] * 3)
    _publish(database_url, "untyped polys", "Untyped Polys")
    layer = fresh_registry(conn).resolve("untyped polys", ANONYMOUS)
    assert layer.geometry_type == "Polygon" and layer.feature_count == 3
    assert layer.bbox is not None and layer.bbox[0] == pytest.approx(-114.1)
    drop_layer(database_url, "untyped polys", "public.Untyped Polys")


def test_single_and_multi_forms_of_one_type_publish_as_the_multi_form(
    database_url: str, conn: psycopg.Connection
) -> None:
    _untyped(conn, "mixed_points", ["SRID=4326;POINT(-114 51)", "SRID=4326;MULTIPOINT((-114 51),(-114.1 51.1))"])
    _publish(database_url, "mixed points", "mixed_points")
    assert fresh_registry(conn).resolve("mixed points", ANONYMOUS).geometry_type == "MultiPoint"
    drop_layer(database_url, "mixed points", "public.mixed_points")


def test_mixed_srids_are_refused_with_a_clear_message(database_url: str, conn: psycopg.Connection) -> None:
    _untyped(conn, "two_srids", ["SRID=4326;POINT(-114 51)", "SRID=3776;POINT(-5700 5658000)"])
    with pytest.raises(IngestError, match=r"several SRIDs \(EPSG:3776, EPSG:4326\)"):
        _publish(database_url, "two srids", "two_srids")
    assert "two srids" not in [layer.id for layer in fresh_registry(conn).all_layers()]
    conn.execute("DROP TABLE public.two_srids")


def test_rows_in_another_srid_or_none_are_refused(database_url: str, conn: psycopg.Connection) -> None:
    _untyped(conn, "in_3776", ["SRID=3776;POINT(-5700 5658000)"])
    with pytest.raises(IngestError, match="is in EPSG:3776; publish a view that transforms it"):
        _publish(database_url, "in 3776", "in_3776")
    _untyped(conn, "no_srid", ["POINT(-114 51)"])
    with pytest.raises(IngestError, match="is in EPSG:0"):
        _publish(database_url, "no srid", "no_srid")
    conn.execute("DROP TABLE public.in_3776, public.no_srid")


def test_an_empty_table_without_typmod_is_refused(database_url: str, conn: psycopg.Connection) -> None:
    conn.execute("DROP TABLE IF EXISTS public.empty_untyped")
    conn.execute("CREATE TABLE public.empty_untyped AS SELECT 1 AS id, 'x'::text AS \"Name\", NULL::geometry AS geom")
    with pytest.raises(IngestError, match="declares no SRID and has no geometry to read one from"):
        _publish(database_url, "empty untyped", "empty_untyped")
    conn.execute("DROP TABLE public.empty_untyped")


@pytest.mark.parametrize("column", ["geom", "Shape"])
def test_direct_edits_announce_their_extent_and_keep_the_count_whatever_the_geometry_column(
    database_url: str, column: str
) -> None:
    """The change trigger writes `geom`'s extent query out and reaches other columns through EXECUTE: both count and
    announce alike."""
    table, layer_id = f"edits_by_sql_{column.lower()}", f"edits by sql {column.lower()}"
    name, g = sql.Identifier("public", table), sql.Identifier(column)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
        conn.execute(
            sql.SQL('CREATE TABLE {} AS SELECT 1 AS id, \'a\'::text AS "Name", '
                    "ST_SetSRID(ST_MakePoint(-114.0, 51.0), 4326)::geometry(Point, 4326) AS {}").format(name, g)
        )  # fmt: skip
    _publish(database_url, layer_id, table)
    count = "SELECT feature_count FROM geoserver.layers WHERE id = %s"
    try:
        with psycopg.connect(database_url, autocommit=True) as conn, psycopg.connect(database_url) as listener:
            listener.execute("LISTEN geoserver_layer_changed")
            listener.commit()
            assert conn.execute(count, [layer_id]).fetchone() == (1,)
            conn.execute(
                sql.SQL("INSERT INTO {} VALUES (2, 'b', ST_SetSRID(ST_MakePoint(-113.0, 52.0), 4326))").format(name)
            )
            conn.execute(sql.SQL("UPDATE {} SET {} = ST_SetSRID(ST_MakePoint(-115.0, 50.0), 4326) WHERE id = 1").format(
                name, g
            ))  # fmt: skip
            conn.execute(sql.SQL("DELETE FROM {} WHERE id = 2").format(name))
            assert conn.execute(count, [layer_id]).fetchone() == (1,)
            heard = [json.loads(n.payload) for n in listener.notifies(timeout=2, stop_after=3)]
        assert [(n["kind"], n["count_delta"], n["bbox"]) for n in heard] == [
            ("edit", 1, [-113.0, 52.0, -113.0, 52.0]),
            ("edit", 0, [-115.0, 50.0, -114.0, 51.0]),
            ("edit", -1, [-113.0, 52.0, -113.0, 52.0]),
        ]
    finally:
        drop_layer(database_url, layer_id, f"public.{table}")
