"""Writing a layer into the catalogue: the swap of a new table, catalogue and field rows, audit, change notice.

Everything here runs inside the caller's transaction, so a load is published whole or not at all. The catalogue
row's columns are `models.LayerRow`'s: `_layer_row` fills them by name and the statement is built from the names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from layers.catalogue.changes import UPLOAD_ACTIONS
from layers.catalogue.journal import announce, audit
from layers.catalogue.manifest import LayerManifest
from layers.catalogue.models import (
    AUDIT_TABLE,
    FIELDS_TABLE,
    GROUPS_TABLE,
    HISTORY_TABLE,
    LAYER_SCHEMA,
    LAYERS_TABLE,
    LayerRow,
)
from layers.catalogue.records import MANAGED
from layers.errors import IngestError
from layers.sqlcompose import Slot, render

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


@dataclass(frozen=True)
class NewTable:
    """A table about to become a layer's rows: a managed staging table, or a table published in place."""

    schema: str
    name: str
    id_column: str
    geometry_type: str
    types: dict[str, str]  # every column but the geometries, in table order
    source_kind: str = MANAGED
    geometry_column: str = GEOM
    geometry_3857_column: str | None = GEOM_3857


@dataclass(frozen=True)
class _Previous:
    source_kind: str
    table_schema: str
    table_name: str
    version: int


_LOCK = render(sql.SQL("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))").format(Slot("key")))
_PREVIOUS = render(
    sql.SQL("SELECT source_kind, table_schema, table_name, version FROM {} WHERE id = {} FOR UPDATE").format(
        LAYERS_TABLE, Slot("id")
    )
)


def lock_layer(conn: psycopg.Connection[Any], layer_id: str) -> None:
    """Two loads of one layer wait for each other instead of racing to the swap."""
    conn.execute(_LOCK, {"key": f"geoserver.layer:{layer_id}"})


def install_change_triggers(conn: psycopg.Connection[Any], table: sql.Identifier, layer_id: str, geom: str) -> None:
    """Make every insert, update, delete and truncate on the table announce the changed extent (NOTIFY)."""
    function = sql.Identifier("geoserver", "announce_layer_change")
    args = sql.SQL("{}, {}").format(sql.Literal(layer_id), sql.Literal(geom))
    for event, transition in (
        ("INSERT", "REFERENCING NEW TABLE AS new_rows"),
        ("UPDATE", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("DELETE", "REFERENCING OLD TABLE AS old_rows"),
        ("TRUNCATE", ""),
    ):
        conn.execute(
            render(
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
        )


# The audit log's actions that put a new table of rows under a layer: a load from a file, a group's upload, its
# new version of the data. Each notes when its table took over (`rows_since`, taken once the old table was locked
# for the swap): writes to the old table until then went with it. Earlier entries have their transaction's start.
LOAD_ACTIONS = ("load", *UPLOAD_ACTIONS)
_API_WRITES = render(
    sql.SQL(
        "SELECT count(DISTINCT fid) FROM {history} WHERE layer_id = {id} AND op <> 'load' AND at > coalesce(("
        "SELECT coalesce((detail->>'rows_since')::timestamptz, at) FROM {audit} "
        "WHERE layer_id = {id} AND action = ANY({loads}) ORDER BY id DESC LIMIT 1), '-infinity')"
    ).format(history=HISTORY_TABLE, audit=AUDIT_TABLE, id=Slot("id"), loads=Slot("loads"))
)
_NOW = render(sql.SQL("SELECT clock_timestamp()"))


def api_writes_since_load(conn: psycopg.Connection[Any], layer_id: str) -> int:
    """How many of the layer's features were written through the API (edits, 311 requests and their status) since
    its rows were last loaded: a load from a file would replace them."""
    row = conn.execute(_API_WRITES, {"id": layer_id, "loads": list(LOAD_ACTIONS)}).fetchone()
    return int(row[0]) if row else 0


def refuse_to_replace_api_writes(conn: psycopg.Connection[Any], layer_id: str) -> None:
    """An IngestError when loading would replace features written through the API since the layer's last load."""
    written = api_writes_since_load(conn, layer_id)
    if written:
        raise IngestError(
            f"layer {layer_id!r}: {written} feature(s) were written through the API since it was last loaded "
            "(edits, 311 requests); loading would replace them, so nothing was loaded"
        )


def publish_rows(
    conn: psycopg.Connection[Any],
    manifest: LayerManifest,
    new: NewTable,
    actor: str,
    action: str = "load",
    *,
    replace_edits: bool = True,
) -> int:
    """Swap the new table in, write the catalogue rows, audit and announce. Returns the layer's new version.

    Without `replace_edits`, a managed layer whose features were written through the API since its last load is
    not replaced (an IngestError): the check holds its table against writes until the swap, so none slips in. (In
    EXCLUSIVE mode, which waits for writers that locked rows to finish: a weaker lock granted beside their row locks
    would deadlock with the drop of the table.)"""
    old = _previous(conn, manifest.id)
    if not replace_edits and old is not None and old.source_kind == MANAGED:
        table = sql.Identifier(old.table_schema, old.table_name)
        conn.execute(render(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(table)))
        refuse_to_replace_api_writes(conn, manifest.id)
    table_name = _swap(conn, old, new, manifest.id)
    rows_since = conn.execute(_NOW).fetchone()
    stats = _stats(conn, sql.Identifier(new.schema, table_name), new.geometry_column, manifest)
    version = old.version + 1 if old is not None else 1
    _ensure_group(conn, manifest.group)
    _write_layer_row(conn, _layer_row(manifest, new, table_name, stats, version))
    _write_field_rows(conn, manifest, new.types)
    detail = {"version": version, "features": stats[0], "source": new.source_kind,
              "rows_since": rows_since[0].isoformat() if rows_since else None}  # fmt: skip
    conn.execute(*audit(actor, action, manifest.id, detail, group_id=manifest.group))
    conn.execute(*announce({"layer": manifest.id, "version": version, "kind": "reload"}))
    return version


def _previous(conn: psycopg.Connection[Any], layer_id: str) -> _Previous | None:
    row = conn.execute(_PREVIOUS, {"id": layer_id}).fetchone()
    return _Previous(*row) if row is not None else None


def _swap(conn: psycopg.Connection[Any], old: _Previous | None, new: NewTable, layer_id: str) -> str:
    """Drop the previous managed table and rename a managed staging table to the layer's id; returns the name."""
    if old is not None and old.source_kind == MANAGED:
        conn.execute(
            render(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(old.table_schema, old.table_name)))
        )
    if new.source_kind != MANAGED:
        return new.name
    conn.execute(render(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(LAYER_SCHEMA, layer_id))))
    conn.execute(
        render(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                sql.Identifier(LAYER_SCHEMA, new.name), sql.Identifier(layer_id)
            )
        )
    )
    return layer_id


def _stats(
    conn: psycopg.Connection[Any], table: sql.Identifier, geometry_column: str, manifest: LayerManifest
) -> tuple[Any, ...]:
    """Feature count, extent and time span of the new rows."""
    temporal: sql.Composable = sql.SQL("NULL::timestamptz, NULL::timestamptz")
    times = manifest.time_fields
    if times is not None:
        start = sql.Identifier(times.start)
        last = sql.SQL("max(coalesce({}, {}))").format(sql.Identifier(times.end), start) if times.end else None
        temporal = sql.SQL("min({})::timestamptz, {}::timestamptz").format(
            start, last or sql.SQL("max({})").format(start)
        )
    stats = conn.execute(
        render(
            sql.SQL("SELECT count(*), ST_SetSRID(ST_Extent({g})::geometry, 4326), {temporal} FROM {t}").format(
                g=sql.Identifier(geometry_column), temporal=temporal, t=table
            )
        )
    ).fetchone()
    assert stats is not None
    return tuple(stats)


def _ensure_group(conn: psycopg.Connection[Any], group: str | None) -> None:
    if group is not None:
        conn.execute(
            render(
                sql.SQL("INSERT INTO {} (id, name) VALUES ({}, {}) ON CONFLICT (id) DO NOTHING").format(
                    GROUPS_TABLE, Slot("id"), Slot("name")
                )
            ),
            {"id": group, "name": group},
        )


def _layer_row(
    manifest: LayerManifest, new: NewTable, table_name: str, stats: tuple[Any, ...], version: int
) -> dict[str, Any]:
    """The catalogue row of the layer, by `LayerRow` column name."""
    times = manifest.time_fields
    count, extent, temporal_start, temporal_end = stats
    row = {
        "id": manifest.id,
        "title": json.dumps(manifest.title.stored()),
        "description": json.dumps(manifest.description.stored()),
        "category": manifest.category,
        "department": manifest.department,
        "license_name": manifest.license.name,
        "license_url": manifest.license.url,
        "update_frequency": manifest.update_frequency,
        "is_demo": manifest.demo,
        "keywords": json.dumps(list(manifest.keywords)),
        "source_kind": new.source_kind,
        "table_schema": new.schema,
        "table_name": table_name,
        "id_column": new.id_column,
        "geometry_column": new.geometry_column,
        "geometry_3857_column": new.geometry_3857_column,
        "geometry_type": new.geometry_type,
        "time_start_field": times.start if times else None,
        "time_end_field": times.end if times else None,
        "category_field": manifest.category_field,
        "opening_hours_field": manifest.opening_hours_field,
        "min_zoom": manifest.min_zoom,
        "max_zoom": manifest.max_zoom,
        "group_id": manifest.group,
        "is_public": manifest.is_public,
        "shared_groups": json.dumps(list(manifest.shared_groups)),
        "is_community": manifest.community,
        "serves_people": manifest.serves_people,
        "searchable_fields": json.dumps(list(manifest.searchable_fields)),
        "require_if_match": manifest.require_if_match,
        "feature_count": count,
        "version": version,
        "manifest": manifest.model_dump_json(),
        "extent": extent,
        "temporal_start": temporal_start,
        "temporal_end": temporal_end,
    }
    unknown = set(row) - set(LayerRow.__table__.c.keys())
    assert not unknown, f"not catalogue columns: {unknown}"
    return row


def _write_layer_row(conn: psycopg.Connection[Any], row: dict[str, Any]) -> None:
    names = list(row)
    conn.execute(
        render(
            sql.SQL(
                "INSERT INTO {layers} ({cols}, updated_at) VALUES ({vals}, now()) "
                "ON CONFLICT (id) DO UPDATE SET ({cols}, updated_at) = ({excluded}, now())"
            ).format(
                layers=LAYERS_TABLE,
                cols=sql.SQL(", ").join(sql.Identifier(n) for n in names),
                vals=sql.SQL(", ").join(Slot(n) for n in names),
                excluded=sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(n)) for n in names),
            )
        ),
        row,
    )


_DELETE_FIELDS = render(sql.SQL("DELETE FROM {} WHERE layer_id = {}").format(FIELDS_TABLE, Slot("layer")))
_INSERT_FIELD = render(
    sql.SQL(
        "INSERT INTO {} (layer_id, name, position, data_type, is_public, description) VALUES ({}, {}, {}, {}, {}, {})"
    ).format(FIELDS_TABLE, *map(Slot, ("layer", "name", "position", "data_type", "is_public", "description")))
)


def _write_field_rows(conn: psycopg.Connection[Any], manifest: LayerManifest, types: dict[str, str]) -> None:
    """Every column of the table, public or not: only public ones ever leave the database."""
    conn.execute(_DELETE_FIELDS, {"layer": manifest.id})
    public = set(manifest.public_fields)
    described = manifest.field_descriptions
    with conn.cursor() as cur:
        cur.executemany(
            _INSERT_FIELD,
            [
                {
                    "layer": manifest.id,
                    "name": name,
                    "position": position,
                    "data_type": data_type,
                    "is_public": name in public,
                    "description": json.dumps(described[name].stored()) if name in described else None,
                }
                for position, (name, data_type) in enumerate(types.items())
            ],
        )
