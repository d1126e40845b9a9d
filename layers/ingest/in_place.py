"""Publishing an existing table or view in place (read-only): the catalogue points at it, nothing is copied."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from layers.catalogue.manifest import LayerManifest
from layers.catalogue.models import LAYERS_TABLE
from layers.catalogue.records import IN_PLACE
from layers.errors import IngestError
from layers.ingest.optimize import stored_column_name
from layers.ingest.register import LoadResult, NewTable, install_change_triggers, lock_layer, publish_rows
from layers.sqlcompose import Slot, render

_GEOMETRY_NAMES = {
    name.upper(): name
    for name in ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "Geometry")
}
_COLUMNS = render(
    sql.SQL(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = {schema} AND table_name = {name} ORDER BY ordinal_position"
    ).format(schema=Slot("schema"), name=Slot("name"))
)
_GEOMETRY = render(
    sql.SQL(
        "SELECT f_geometry_column, type, srid FROM geometry_columns "
        "WHERE f_table_schema = {schema} AND f_table_name = {name} ORDER BY srid = 3857, f_geometry_column"
    ).format(schema=Slot("schema"), name=Slot("name"))
)
_RELKIND = render(
    sql.SQL(
        "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = {schema} AND c.relname = {name}"
    ).format(schema=Slot("schema"), name=Slot("name"))
)
_COUNT = render(sql.SQL("SELECT feature_count FROM {} WHERE id = {}").format(LAYERS_TABLE, Slot("id")))
# A geometry type and its multi form publish as the multi form; anything more mixed is "Geometry".
_MULTI = {"POINT": "MULTIPOINT", "LINESTRING": "MULTILINESTRING", "POLYGON": "MULTIPOLYGON"}


def publish_table(
    database_url: str, manifest: LayerManifest, *, actor: str = "cli", replace_edits: bool = True
) -> LoadResult:
    """Publish the manifest's `source.table` in place; its triggers announce edits when it is a table. Without
    `replace_edits`, not in place of a loaded layer whose features were written through the API since its load."""
    assert manifest.source.table is not None
    schema, _, name = manifest.source.table.rpartition(".")
    schema = schema or "public"
    if manifest.id_field is None:
        raise IngestError(f"layer {manifest.id!r}: a published table needs an id_field")
    with psycopg.connect(database_url) as conn, conn.transaction():
        lock_layer(conn, manifest.id)
        new = _describe(conn, manifest, schema, name)
        kind = conn.execute(_RELKIND, {"schema": schema, "name": name}).fetchone()
        if kind is not None and kind[0] in ("r", "p"):
            # A view cannot carry triggers: its edits are not announced, and its tiles follow the cache's limits.
            install_change_triggers(conn, sql.Identifier(schema, name), manifest.id, new.geometry_column)
        version = publish_rows(conn, manifest, new, actor, replace_edits=replace_edits)
        count = conn.execute(_COUNT, {"id": manifest.id}).fetchone()
    return LoadResult(manifest.id, int(count[0]) if count else 0, 0, 0, version)


def _describe(conn: psycopg.Connection[Any], manifest: LayerManifest, schema: str, name: str) -> NewTable:
    """The table's columns and geometry, checked against the manifest."""
    where = {"schema": schema, "name": name}
    columns = conn.execute(_COLUMNS, where).fetchall()
    geometries = conn.execute(_GEOMETRY, where).fetchall()
    geometry = geometries[0] if geometries else None
    source = manifest.source.table
    if not columns or geometry is None:
        raise IngestError(f"layer {manifest.id!r}: {source!r} is not a table or view with a geometry column")
    srid, geometry_type = geometry[2], geometry[1]
    if srid == 0 or geometry_type.upper() == "GEOMETRY":
        # No typmod (common after CREATE TABLE AS): the column declares neither; the rows say what they hold.
        srid, geometry_type = _from_data(conn, manifest, sql.Identifier(schema, name), geometry[0], srid)
    if srid != 4326:
        raise IngestError(
            f"layer {manifest.id!r}: {source!r} is in EPSG:{srid}; publish a view that transforms it to EPSG:4326"
        )
    # A stored 3857 column `publish --optimize` added earlier is used again, and is no field.
    stored = stored_column_name(geometry[0])
    stored_3857 = stored if any(g[0] == stored and g[2] == 3857 for g in geometries) else None
    types = {col: dtype for col, dtype in columns if col not in (geometry[0], stored_3857)}
    missing = [f for f in (*manifest.public_fields, manifest.id_field) if f not in types]
    if missing:
        raise IngestError(f"layer {manifest.id!r}: fields not in {source!r}: {', '.join(str(m) for m in missing)}")
    return NewTable(
        schema=schema,
        name=name,
        id_column=str(manifest.id_field),
        geometry_type=_GEOMETRY_NAMES.get(geometry_type.upper(), "Geometry"),
        types=types,
        source_kind=IN_PLACE,
        geometry_column=geometry[0],
        geometry_3857_column=stored_3857,
    )


def _from_data(
    conn: psycopg.Connection[Any], manifest: LayerManifest, table: sql.Identifier, column: str, declared: int
) -> tuple[int, str]:
    """The SRID (when the column declares none) and the geometry type, read from every row of the table."""
    found = conn.execute(
        render(
            sql.SQL(
                "SELECT array_agg(DISTINCT ST_SRID({g})), array_agg(DISTINCT upper(GeometryType({g}))) "
                "FROM {table} WHERE {g} IS NOT NULL"
            ).format(g=sql.Identifier(column), table=table)
        )
    ).fetchone()
    srids, types = (found[0] or [], found[1] or []) if found else ([], [])
    source = manifest.source.table
    if declared == 0:
        if not srids:
            raise IngestError(
                f"layer {manifest.id!r}: {source!r} declares no SRID and has no geometry to read one from; "
                "give the column a type such as geometry(Geometry, 4326)"
            )
        if len(srids) > 1:
            listed = ", ".join(f"EPSG:{s}" if s else "none" for s in sorted(srids))
            raise IngestError(
                f"layer {manifest.id!r}: {source!r} holds geometries in several SRIDs ({listed}); "
                "publish a view that transforms them all to EPSG:4326"
            )
        declared = srids[0]
    if len(types) == 1:
        return declared, types[0]
    multi = {_MULTI.get(t, t) for t in types}
    return declared, multi.pop() if len(multi) == 1 else "GEOMETRY"
