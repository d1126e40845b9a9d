"""Writing a layer into the catalogue: the swap of a new table, catalogue and field rows, audit, change notices.

Everything here runs inside the caller's transaction, so a load is published whole or not at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from layers.errors import IngestError
from layers.manifest import LayerManifest
from layers.models import CATALOG_SCHEMA, CHANGE_CHANNEL, LAYER_SCHEMA

GEOM = "geom"
GEOM_3857 = "geom_3857"


@dataclass(frozen=True)
class LoadResult:
    """What a load did."""

    layer_id: str
    feature_count: int
    repaired: int
    dropped_empty: int
    version: int


def lock_layer(conn: psycopg.Connection[Any], layer_id: str) -> None:
    # Two loads of one layer wait for each other instead of racing to the swap.
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"geoserver.layer:{layer_id}"])


def install_change_triggers(conn: psycopg.Connection[Any], table: sql.Identifier, layer_id: str, geom: str) -> None:
    """Make every insert, update, delete and truncate on the table announce the changed extent (NOTIFY)."""
    function = sql.Identifier(CATALOG_SCHEMA, "announce_layer_change")
    args = sql.SQL("{}, {}").format(sql.Literal(layer_id), sql.Literal(geom))
    for event, transition in (
        ("INSERT", "REFERENCING NEW TABLE AS new_rows"),
        ("UPDATE", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("DELETE", "REFERENCING OLD TABLE AS old_rows"),
        ("TRUNCATE", ""),
    ):
        conn.execute(
            sql.SQL(
                "DROP TRIGGER IF EXISTS {name} ON {table}; "
                "CREATE TRIGGER {name} AFTER {event} ON {table} {transition} "
                "FOR EACH STATEMENT EXECUTE FUNCTION {fn}({args})"
            ).format(
                name=sql.Identifier(f"geoserver_announce_{event.lower()}"),
                event=sql.SQL(event),
                table=table,
                transition=sql.SQL(transition),
                fn=function,
                args=args,
            )
        )


def publish_rows(
    conn: psycopg.Connection[Any],
    manifest: LayerManifest,
    table_name: str,
    id_column: str,
    geometry_type: str,
    types: dict[str, str],
    actor: str,
    *,
    kind: str,
    table_schema: str = LAYER_SCHEMA,
    geometry_column: str = GEOM,
    geometry_3857_column: str | None = GEOM_3857,
) -> int:
    """Swap the new table in, write the catalogue rows, audit and announce. Runs inside the load's transaction."""
    layers = sql.Identifier(CATALOG_SCHEMA, "layers")
    old = conn.execute(
        sql.SQL("SELECT source_kind, table_schema, table_name, version FROM {} WHERE id = %s FOR UPDATE").format(
            layers
        ),
        [manifest.id],
    ).fetchone()
    final_name = manifest.id if kind == "managed" else table_name
    if old is not None and old[0] == "managed":
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(old[1], old[2])))
    if kind == "managed":
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(LAYER_SCHEMA, final_name)))
        conn.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                sql.Identifier(LAYER_SCHEMA, table_name), sql.Identifier(final_name)
            )
        )
    target = sql.Identifier(table_schema, final_name)
    geom = sql.Identifier(geometry_column)
    time_start = manifest.time_fields.start if manifest.time_fields else None
    time_end = manifest.time_fields.end if manifest.time_fields else None
    temporal: sql.Composable = sql.SQL("NULL::timestamptz, NULL::timestamptz")
    if time_start is not None:
        last = (
            sql.SQL("max(coalesce({}, {}))").format(sql.Identifier(time_end), sql.Identifier(time_start))
            if time_end
            else sql.SQL("max({})").format(sql.Identifier(time_start))
        )
        temporal = sql.SQL("min({})::timestamptz, {}::timestamptz").format(sql.Identifier(time_start), last)
    stats = conn.execute(
        sql.SQL("SELECT count(*), ST_SetSRID(ST_Extent({g})::geometry, 4326), {temporal} FROM {t}").format(
            g=geom, temporal=temporal, t=target
        )
    ).fetchone()
    assert stats is not None
    version = (old[3] + 1) if old is not None else 1
    group = manifest.group
    if group is not None:
        conn.execute(
            sql.SQL("INSERT INTO {} (id, name) VALUES (%s, %s) ON CONFLICT (id) DO NOTHING").format(
                sql.Identifier(CATALOG_SCHEMA, "groups")
            ),
            [group, group],
        )
    row = {
        "id": manifest.id,
        "title": json.dumps(manifest.title.model_dump()),
        "description": json.dumps(manifest.description.model_dump()),
        "category": manifest.category,
        "department": manifest.department,
        "license_name": manifest.license.name,
        "license_url": manifest.license.url,
        "update_frequency": manifest.update_frequency,
        "is_demo": manifest.demo,
        "keywords": json.dumps(list(manifest.keywords)),
        "source_kind": kind,
        "table_schema": table_schema,
        "table_name": final_name,
        "id_column": id_column,
        "geometry_column": geometry_column,
        "geometry_3857_column": geometry_3857_column,
        "geometry_type": geometry_type,
        "time_start_field": time_start,
        "time_end_field": time_end,
        "category_field": manifest.category_field,
        "opening_hours_field": manifest.opening_hours_field,
        "min_zoom": manifest.min_zoom,
        "max_zoom": manifest.max_zoom,
        "group_id": group,
        "feature_count": stats[0],
        "version": version,
        "manifest": manifest.model_dump_json(),
        "extent": stats[1],
        "temporal_start": stats[2],
        "temporal_end": stats[3],
    }
    names = list(row)
    conn.execute(
        sql.SQL(
            "INSERT INTO {layers} ({cols}, updated_at) VALUES ({vals}, now()) "
            "ON CONFLICT (id) DO UPDATE SET ({cols}, updated_at) = ({excluded}, now())"
        ).format(
            layers=layers,
            cols=sql.SQL(", ").join(sql.Identifier(n) for n in names),
            vals=sql.SQL(", ").join(sql.Placeholder(n) for n in names),
            excluded=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(n)) for n in names),
        ),
        row,
    )
    fields_table = sql.Identifier(CATALOG_SCHEMA, "layer_fields")
    conn.execute(sql.SQL("DELETE FROM {} WHERE layer_id = %s").format(fields_table), [manifest.id])
    public = set(manifest.public_fields)
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL(
                "INSERT INTO {} (layer_id, name, position, data_type, is_public, description) "
                "VALUES (%s, %s, %s, %s, %s, %s)"
            ).format(fields_table),
            [
                (
                    manifest.id,
                    name,
                    position,
                    data_type,
                    name in public,
                    json.dumps(manifest.field_descriptions[name].model_dump())
                    if name in manifest.field_descriptions
                    else None,
                )
                for position, (name, data_type) in enumerate(types.items())
            ],
        )
    conn.execute(
        sql.SQL("INSERT INTO {} (actor, action, layer_id, detail) VALUES (%s, %s, %s, %s)").format(
            sql.Identifier(CATALOG_SCHEMA, "audit_log")
        ),
        [actor, "load", manifest.id, json.dumps({"version": version, "features": stats[0], "source": kind})],
    )
    # Delivered at commit, so listeners never see a change that was rolled back.
    conn.execute(
        "SELECT pg_notify(%s, %s)",
        [CHANGE_CHANNEL, json.dumps({"layer": manifest.id, "version": version, "kind": "reload"})],
    )
    return version


def publish_table(database_url: str, manifest: LayerManifest, *, actor: str = "cli") -> LoadResult:
    """Publish an existing table or view in place (read-only): the catalogue points at it, nothing is copied."""
    assert manifest.source.table is not None
    schema, _, name = manifest.source.table.rpartition(".")
    schema = schema or "public"
    if manifest.id_field is None:
        raise IngestError(f"layer {manifest.id!r}: a published table needs an id_field")
    with psycopg.connect(database_url) as conn, conn.transaction():
        lock_layer(conn, manifest.id)
        columns = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            [schema, name],
        ).fetchall()
        geometry = conn.execute(
            "SELECT f_geometry_column, type, srid FROM geometry_columns "
            "WHERE f_table_schema = %s AND f_table_name = %s ORDER BY f_geometry_column LIMIT 1",
            [schema, name],
        ).fetchone()
        if not columns or geometry is None:
            raise IngestError(
                f"layer {manifest.id!r}: {manifest.source.table!r} is not a table or view with a geometry column"
            )
        if geometry[2] != 4326:
            raise IngestError(
                f"layer {manifest.id!r}: {manifest.source.table!r} is in EPSG:{geometry[2]}; "
                "publish a view that transforms it to EPSG:4326"
            )
        types = {col: dtype for col, dtype in columns if col != geometry[0]}
        missing = [f for f in (*manifest.public_fields, manifest.id_field) if f not in types]
        if missing:
            raise IngestError(f"layer {manifest.id!r}: fields not in {manifest.source.table!r}: {', '.join(missing)}")
        geometry_type = _GEOMETRY_NAMES.get(geometry[1].upper(), "Geometry")
        kind = conn.execute(
            "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s",
            [schema, name],
        ).fetchone()
        if kind is not None and kind[0] in ("r", "p"):
            # A view cannot carry triggers: its edits are not announced, and its tiles follow the cache's limits.
            install_change_triggers(conn, sql.Identifier(schema, name), manifest.id, geometry[0])
        version = publish_rows(
            conn,
            manifest,
            name,
            manifest.id_field,
            geometry_type,
            types,
            actor,
            kind="table",
            table_schema=schema,
            geometry_column=geometry[0],
            geometry_3857_column=None,
        )
        count = conn.execute(
            sql.SQL("SELECT feature_count FROM {} WHERE id = %s").format(sql.Identifier(CATALOG_SCHEMA, "layers")),
            [manifest.id],
        ).fetchone()
    return LoadResult(manifest.id, int(count[0]) if count else 0, 0, 0, version)


_GEOMETRY_NAMES = {
    name.upper(): name
    for name in ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "Geometry")
}
