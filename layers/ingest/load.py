"""Loading a layer: a file into a managed table, or an existing table or view published in place.

A load runs in one transaction: create a staging table, COPY the rows in, type and index it, then swap it for the
old table and update the catalogue. Readers see the previous version until the commit; a failure at any point, or a
process killed half-way, rolls everything back and leaves the previous version untouched.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import shapely
from psycopg import sql

from layers.catalogue.manifest import LayerManifest
from layers.catalogue.models import LAYER_SCHEMA
from layers.errors import IngestError
from layers.ingest.readers import read_file
from layers.ingest.register import (
    GEOM,
    GEOM_3857,
    LoadResult,
    NewTable,
    install_change_triggers,
    lock_layer,
    publish_rows,
)
from layers.ingest.search_index import index_searchable
from layers.sqlcompose import render

DEFAULT_ID = "fid"
COPY_CHUNK_ROWS = 50_000
COPY_NULL = "\\N"  # how a missing value travels in COPY (a text value of exactly \N would load as NULL)
# Web Mercator is undefined at the poles; a layer outside this range cannot be tiled.
MAX_LATITUDE = 85.05112878

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


# -- preparing the frame ------------------------------------------------------------------------------------
def _to_wgs84(frame: gpd.GeoDataFrame, name: str) -> gpd.GeoDataFrame:
    if frame.crs is not None and frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(4326)
    xmin, ymin, xmax, ymax = frame.total_bounds if len(frame) else (0, 0, 0, 0)
    if (
        not np.isfinite([xmin, ymin, xmax, ymax]).all()
        or xmin < -180
        or xmax > 180
        or ymin < -MAX_LATITUDE
        or ymax > MAX_LATITUDE
    ):
        raise IngestError(
            f"{name}: coordinates fall outside longitude -180..180 / latitude -85..85 after reprojection; "
            "check the CRS, or whether longitude and latitude are swapped"
        )
    return frame


def _repair(frame: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, int, int]:
    """Drop missing and empty geometries, repair invalid ones. Returns the frame, repaired and dropped counts."""
    geoms = frame.geometry.to_numpy()
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    dropped = int((~keep).sum())
    frame = frame.loc[keep].copy()
    geoms = frame.geometry.to_numpy()
    invalid = ~shapely.is_valid(geoms)
    repaired = int(invalid.sum())
    if repaired:
        fixed = shapely.make_valid(geoms[invalid])
        dims = shapely.get_dimensions(geoms[invalid])
        # make_valid can turn a bad polygon into a collection of a polygon and stray lines: keep the parts
        # of the original dimension so the layer keeps one kind of geometry.
        fixed = np.array([_same_dimension(g, d) for g, d in zip(fixed, dims, strict=True)], dtype=object)
        geoms = geoms.copy()
        geoms[invalid] = fixed
        frame = frame.set_geometry(gpd.GeoSeries(geoms, index=frame.index, crs=frame.crs))
        still_empty = shapely.is_empty(frame.geometry.to_numpy())
        dropped += int(still_empty.sum())
        frame = frame.loc[~still_empty]
    return frame, repaired, dropped


def _same_dimension(geom: Any, dim: int) -> Any:
    if geom.geom_type != "GeometryCollection":
        return geom
    parts = [p for p in shapely.get_parts(geom) if shapely.get_dimensions(p) == dim]
    return shapely.union_all(parts) if parts else shapely.Point()


def _geometry_type(frame: gpd.GeoDataFrame, declared: str) -> str:
    """The column's geometry type: the declared one, promoted to Multi when the data mixes single and multi."""
    found = set(frame.geom_type.unique()) if len(frame) else set()
    if declared == "Geometry":
        if len(found) == 1:
            return found.pop()
        bases = {t.removeprefix("Multi") for t in found}
        return f"Multi{bases.pop()}" if len(bases) == 1 else "Geometry"
    base = declared.removeprefix("Multi")
    allowed = {base, f"Multi{base}"}
    if not found <= allowed:
        raise IngestError(f"the layer is declared {declared} but the file holds {', '.join(sorted(found - allowed))}")
    return f"Multi{base}" if declared.startswith("Multi") or f"Multi{base}" in found else base


def _pg_type(series: pd.Series) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "bigint"
    if pd.api.types.is_float_dtype(dtype):
        return "double precision"
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "timestamptz"
    if pd.api.types.is_datetime64_dtype(dtype):
        return "timestamp"
    sample = series.dropna()
    if len(sample) and sample.map(lambda v: isinstance(v, dict | list)).all():
        return "jsonb"
    return "text"


def _column_types(frame: gpd.GeoDataFrame, manifest: LayerManifest) -> dict[str, str]:
    columns = [c for c in frame.columns if c != frame.geometry.name]
    for name in columns:
        if not isinstance(name, str) or not name or len(name.encode()) > 63 or "\x00" in name:
            raise IngestError(f"the column name {str(name)[:40]!r} cannot be stored (empty, or over 63 bytes)")
        if name in (GEOM, GEOM_3857):
            raise IngestError(f"the file has a column named {name!r}, which the layer table reserves")
    missing = [f for f in manifest.public_fields if f not in columns]
    if missing:
        raise IngestError(f"layer {manifest.id!r}: public fields not in the file: {', '.join(missing)}")
    return {name: _pg_type(frame[name]) for name in columns}


def _id_column(frame: gpd.GeoDataFrame, manifest: LayerManifest) -> str:
    if manifest.id_field is None:
        if DEFAULT_ID in frame.columns:
            raise IngestError(f"the file has a {DEFAULT_ID!r} column: name it as the layer's id_field")
        frame.insert(0, DEFAULT_ID, np.arange(1, len(frame) + 1, dtype="int64"))
        return DEFAULT_ID
    if manifest.id_field not in frame.columns:
        raise IngestError(f"layer {manifest.id!r}: the id field {manifest.id_field!r} is not in the file")
    ids = frame[manifest.id_field]
    if ids.isna().any():
        raise IngestError(f"layer {manifest.id!r}: some features have no {manifest.id_field!r}")
    if ids.duplicated().any():
        raise IngestError(f"layer {manifest.id!r}: {manifest.id_field!r} repeats a value; ids must be unique")
    return manifest.id_field


def _csv_chunks(frame: gpd.GeoDataFrame, columns: list[str], types: dict[str, str]) -> Any:
    """Yield the frame as CSV text for COPY, geometry as hex EWKB, a chunk at a time."""
    geoms = frame.geometry.to_numpy()
    for start in range(0, len(frame), COPY_CHUNK_ROWS):
        part = frame.iloc[start : start + COPY_CHUNK_ROWS]
        out = pd.DataFrame(index=part.index)
        for name in columns:
            values = part[name]
            if types[name] == "jsonb":
                values = values.map(lambda v: None if v is None else json.dumps(v))
            out[name] = values
        chunk_geoms = shapely.set_srid(geoms[start : start + COPY_CHUNK_ROWS], 4326)
        out[GEOM] = shapely.to_wkb(chunk_geoms, hex=True, include_srid=True)
        buffer = io.StringIO()
        # pandas quotes every field under QUOTE_NONNUMERIC, missing ones too: mark them with COPY_NULL,
        # which COPY's FORCE_NULL turns into NULL even when quoted. An empty string stays an empty string.
        out.to_csv(
            buffer,
            header=False,
            index=False,
            quoting=csv.QUOTE_NONNUMERIC,
            na_rep=COPY_NULL,
            date_format="%Y-%m-%dT%H:%M:%S.%f%z",
        )
        yield len(part), buffer.getvalue()


# -- the load ------------------------------------------------------------------------------------------------
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
    frame = read_file(path, layer=manifest.source.layer, crs=crs or manifest.source.crs)
    frame = frame.rename_geometry(GEOM) if frame.geometry.name != GEOM else frame
    frame = _to_wgs84(frame, path.name)
    frame, repaired, dropped = _repair(frame)
    frame = frame.reset_index(drop=True)
    geometry_type = _geometry_type(frame, manifest.geometry_type)
    id_column = _id_column(frame, manifest)
    types = _column_types(frame, manifest)
    columns = list(types)
    progress("read", 1, 1)

    staging = f"load_{secrets.token_hex(8)}"
    with psycopg.connect(database_url) as conn:
        with conn.transaction():
            lock_layer(conn, manifest.id)
            table = sql.Identifier(LAYER_SCHEMA, staging)
            conn.execute(
                render(
                    sql.SQL("CREATE TABLE {} ({}, {} geometry(Geometry, 4326))").format(
                        table,
                        sql.SQL(", ").join(
                            sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(types[c])) for c in columns
                        ),
                        sql.Identifier(GEOM),
                    )
                )
            )
            names = sql.SQL(", ").join(sql.Identifier(c) for c in [*columns, GEOM])
            copy_sql = render(
                sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, NULL {}, FORCE_NULL ({}))").format(
                    table, names, sql.Literal(COPY_NULL), names
                )
            )
            done = 0
            with conn.cursor().copy(copy_sql) as copy:
                for count, text in _csv_chunks(frame, columns, types):
                    copy.write(text)
                    done += count
                    progress("copy", done, len(frame))
            progress("index", 0, 1)
            _finish_table(conn, table, staging, geometry_type, id_column, manifest.id)
            index_searchable(conn, table, staging, manifest, types)
            progress("index", 1, 1)
            new = NewTable(LAYER_SCHEMA, staging, id_column, geometry_type, types)
            version = publish_rows(conn, manifest, new, actor)
    progress("done", 1, 1)
    return LoadResult(manifest.id, len(frame), repaired, dropped, version)


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
