"""Loading a layer from a file into a managed table, whole or not at all.

A load runs in one transaction: create a staging table, COPY the rows in, type and index it, then swap it for the
old table and update the catalogue. Readers see the previous version until the commit; a failure at any point, or a
process killed half-way, rolls everything back and leaves the previous version untouched.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from layers.catalogue.manifest import LayerManifest
from layers.catalogue.models import LAYER_SCHEMA
from layers.errors import IngestError
from layers.ingest.frames import COPY_NULL, Frame, column_types, csv_chunks, geometry_type, id_column, read_frame
from layers.ingest.register import (
    GEOM,
    GEOM_3857,
    LoadResult,
    NewTable,
    install_change_triggers,
    lock_layer,
    publish_rows,
)
from layers.sqlcompose import render

Progress = Callable[[str, int, int], None]


def _noop(stage: str, done: int, total: int) -> None:
    pass


def resolve_source(manifest: LayerManifest, manifest_dir: Path | None, data_dir: Path | None) -> Path:
    """Find a manifest's source file: as given if absolute, else beside the manifest, else in the data folder."""
    assert manifest.source.file is not None
    candidate = Path(manifest.source.file)
    if candidate.is_absolute():
        return candidate
    for base in (manifest_dir, data_dir):
        if base is not None and (base / candidate).exists():
            return base / candidate
    raise IngestError(f"layer {manifest.id!r}: source file {manifest.source.file!r} was not found")


def load_file(
    database_url: str,
    manifest: LayerManifest,
    path: Path,
    *,
    crs: str | None = None,
    actor: str = "cli",
    progress: Progress = _noop,
) -> LoadResult:
    """Ingest a file into the layer's managed table and publish it, replacing the previous version atomically."""
    progress("read", 0, 1)
    rows = read_frame(path, layer=manifest.source.layer, crs=crs or manifest.source.crs)
    progress("read", 1, 1)
    return load_frame(database_url, manifest, rows, actor=actor, progress=progress)


def load_frame(
    database_url: str,
    manifest: LayerManifest,
    rows: Frame,
    *,
    actor: str = "cli",
    action: str = "load",
    progress: Progress = _noop,
) -> LoadResult:
    """Store prepared rows as the layer's new version, atomically (see the module's docstring)."""
    frame = rows.frame
    gtype = geometry_type(frame, manifest.geometry_type)
    id_name = id_column(frame, manifest)
    types = column_types(frame, manifest)
    columns = list(types)
    staging = f"load_{secrets.token_hex(8)}"
    with psycopg.connect(database_url) as conn, conn.transaction():
        lock_layer(conn, manifest.id)
        table = sql.Identifier(LAYER_SCHEMA, staging)
        _create_staging(conn, table, columns, types)
        names = sql.SQL(", ").join(sql.Identifier(c) for c in [*columns, GEOM])
        copy_sql = render(
            sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, NULL {}, FORCE_NULL ({}))").format(
                table, names, sql.Literal(COPY_NULL), names
            )
        )
        done = 0
        with conn.cursor().copy(copy_sql) as copy:
            for count, text in csv_chunks(frame, columns, types):
                copy.write(text)
                done += count
                progress("copy", done, len(frame))
        progress("index", 0, 1)
        _finish_table(conn, table, staging, gtype, id_name, manifest.id)
        progress("index", 1, 1)
        version = publish_rows(conn, manifest, NewTable(LAYER_SCHEMA, staging, id_name, gtype, types), actor, action)
    progress("done", 1, 1)
    return LoadResult(manifest.id, len(frame), rows.repaired, rows.dropped, version)


def _create_staging(
    conn: psycopg.Connection[Any], table: sql.Identifier, columns: list[str], types: dict[str, str]
) -> None:
    conn.execute(
        render(
            sql.SQL("CREATE TABLE {} ({}, {} geometry(Geometry, 4326))").format(
                table,
                sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(types[c])) for c in columns),
                sql.Identifier(GEOM),
            )
        )
    )


def _finish_table(
    conn: psycopg.Connection[Any],
    table: sql.Identifier,
    staging: str,
    geometry_type: str,
    id_column: str,
    layer_id: str,
) -> None:
    gtype = sql.SQL(geometry_type)
    to_type = (
        sql.SQL("ST_Multi({})").format(sql.Identifier(GEOM))
        if geometry_type.startswith("Multi")
        else sql.Identifier(GEOM)
    )
    conn.execute(
        render(
            sql.SQL(
                "ALTER TABLE {t} ALTER COLUMN {g} TYPE geometry({gtype}, 4326) USING {to_type}, "
                "ALTER COLUMN {g} SET NOT NULL, "
                "ADD COLUMN {g3857} geometry({gtype}, 3857) GENERATED ALWAYS AS (ST_Transform({g}, 3857)) STORED, "
                "ADD CONSTRAINT {pk} PRIMARY KEY ({id})"
            ).format(
                t=table,
                g=sql.Identifier(GEOM),
                gtype=gtype,
                to_type=to_type,
                g3857=sql.Identifier(GEOM_3857),
                pk=sql.Identifier(f"{staging}_pkey"),
                id=sql.Identifier(id_column),
            )
        )
    )
    for column in (GEOM, GEOM_3857):
        conn.execute(
            render(
                sql.SQL("CREATE INDEX {} ON {} USING gist ({})").format(
                    sql.Identifier(f"{staging}_{column}_gist"), table, sql.Identifier(column)
                )
            )
        )
    install_change_triggers(conn, table, layer_id, GEOM)
    conn.execute(render(sql.SQL("ANALYZE {}").format(table)))
