"""Whole-layer downloads (GeoJSON, CSV, GeoPackage) written to a file in bounded memory, public fields only.

GeoJSON comes from a server-side cursor a chunk of features at a time; CSV is PostgreSQL's own COPY output; a
GeoPackage is written chunk by chunk (pyogrio, in a worker thread). Each read runs in one transaction, so a file is
one consistent snapshot of the layer. `download_files` keeps the files and serves each build to everyone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson
from psycopg import AsyncConnection, sql

from layers.catalogue.records import Layer
from layers.queries.geojson import feature_json
from layers.sqlcompose import render

CHUNK_ROWS = 5_000
GPKG_CHUNK_ROWS = 20_000
WRITE_BYTES = 256 * 1024


class Download(NamedTuple):
    """One download format: URL suffix, media type, the Content-Type it is served with, and its name."""

    suffix: str
    media_type: str
    content_type: str
    name: str


DOWNLOADS = (
    Download("geojson", "application/geo+json", "application/geo+json", "GeoJSON"),
    Download("csv", "text/csv", "text/csv; charset=utf-8", "CSV"),
    Download("gpkg", "application/geopackage+sqlite3", "application/geopackage+sqlite3", "GeoPackage"),
)
BY_SUFFIX = {download.suffix: download for download in DOWNLOADS}
GPKG_FID = "gpkg_fid"  # GeoPackage's own row id, named so it never clashes with a layer's id field
_GPKG_GEOMETRY = {"Geometry": "Unknown"}


def _ordered(layer: Layer) -> sql.Composable:
    return sql.Identifier(layer.id_column)


async def geojson(conn: AsyncConnection[Any], layer: Layer) -> AsyncIterator[bytes]:
    """The layer as one GeoJSON FeatureCollection, a chunk of features at a time."""
    statement = sql.SQL("SELECT {feature} FROM {table} ORDER BY {id}").format(
        feature=feature_json(layer, sql.Identifier(layer.geometry_column)), table=layer.table, id=_ordered(layer)
    )
    yield b'{"type":"FeatureCollection","name":' + orjson.dumps(layer.id) + b',"features":['
    first = True
    async with conn.transaction():
        async with conn.cursor(name="download_geojson") as cur:
            await cur.execute(render(statement))
            while rows := await cur.fetchmany(CHUNK_ROWS):
                text = ",".join(row[0] for row in rows)
                yield (b"" if first else b",") + text.encode()
                first = False
    yield b"]}"


def _csv_columns(layer: Layer) -> list[sql.Composable]:
    columns: list[sql.Composable] = [sql.Identifier(name) for name in layer.field_names]
    if layer.id_column not in layer.field_names:
        columns.insert(0, sql.Identifier(layer.id_column))
    # GDAL, QGIS and spreadsheets read a "WKT" column as the geometry.
    columns.append(sql.SQL("ST_AsText({}) AS {}").format(sql.Identifier(layer.geometry_column), sql.Identifier("WKT")))
    return columns


async def csv(conn: AsyncConnection[Any], layer: Layer) -> AsyncIterator[bytes]:
    """The layer as CSV with a header row and the geometry as WKT, straight from COPY."""
    statement = sql.SQL("COPY (SELECT {columns} FROM {table} ORDER BY {id}) TO STDOUT (FORMAT csv, HEADER)").format(
        columns=sql.SQL(", ").join(_csv_columns(layer)), table=layer.table, id=_ordered(layer)
    )
    buffer = bytearray()
    async with conn.transaction():
        async with conn.cursor() as cur:
            async with cur.copy(render(statement)) as copy:
                async for data in copy:
                    buffer += data
                    if len(buffer) >= WRITE_BYTES:
                        yield bytes(buffer)
                        buffer.clear()
    if buffer:
        yield bytes(buffer)


def _gpkg_select(layer: Layer) -> tuple[sql.Composed, list[tuple[str, str]]]:
    """The SELECT for a GeoPackage and the (name, kind) of each attribute column, in order."""
    names = list(layer.field_names)
    kinds: dict[str, str] = {f.name: f.kind for f in layer.fields}
    if layer.id_column not in kinds:
        names.insert(0, layer.id_column)
        kinds[layer.id_column] = "integer" if layer.id_column == "fid" else "string"
    columns: list[sql.Composable] = []
    described: list[tuple[str, str]] = []
    for name in names:
        kind = kinds[name]
        column: sql.Composable = sql.Identifier(name)
        if kind == "datetime":
            column = sql.SQL("({} AT TIME ZONE 'UTC')").format(column)  # naive UTC: numpy has no time zones
        elif kind not in ("integer", "number", "boolean", "date", "string"):
            column, kind = sql.SQL("{}::text").format(column), "string"
        elif kind == "string":
            column = sql.SQL("{}::text").format(column)
        columns.append(column)
        described.append((name, kind))
    columns.append(sql.SQL("ST_AsBinary({})").format(sql.Identifier(layer.geometry_column)))
    statement = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
        sql.SQL(", ").join(columns), layer.table, _ordered(layer)
    )
    return statement, described


def _arrays(
    rows: list[tuple[Any, ...]], described: list[tuple[str, str]]
) -> tuple[list[Any], list[Any], dict[str, Any]]:
    """Column arrays, null masks and UTC markers of a chunk of rows, typed by field kind."""
    data: list[Any] = []
    masks: list[Any] = []
    offsets: dict[str, Any] = {}
    for position, (name, kind) in enumerate(described):
        values = [row[position] for row in rows]
        mask = np.array([v is None for v in values], dtype=bool)
        if kind == "integer":
            array = np.array([0 if v is None else v for v in values], dtype=np.int64)
        elif kind == "number":
            array = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
        elif kind == "boolean":
            array = np.array([bool(v) for v in values], dtype=bool)
        elif kind == "datetime":
            array = np.array(values, dtype="datetime64[ms]")
            offsets[name] = np.full(len(values), 100, dtype=np.int32)  # GDAL's code for UTC
        elif kind == "date":
            array = np.array(values, dtype="datetime64[D]")
        else:
            array = np.array(values, dtype=object)
        data.append(array)
        masks.append(mask if kind in ("integer", "boolean") else None)
    return data, masks, offsets


def _write_chunk(
    path: str, layer: Layer, rows: list[tuple[Any, ...]], described: list[tuple[str, str]], append: bool
) -> None:
    from pyogrio import raw

    data, masks, offsets = _arrays(rows, described)
    geometry = np.array([bytes(row[-1]) for row in rows], dtype=object)
    raw.write(
        path,
        geometry,
        data,
        [name for name, _ in described],
        field_mask=masks,
        layer=layer.id,
        driver="GPKG",
        geometry_type=_GPKG_GEOMETRY.get(layer.geometry_type, layer.geometry_type),
        crs="EPSG:4326",
        append=append,
        layer_options=None if append else {"FID": GPKG_FID},
        gdal_tz_offsets=offsets,
    )


async def write_file(conn: AsyncConnection[Any], layer: Layer, suffix: str, path: Path) -> None:
    """Write the whole layer in the format named by `suffix` to `path` (replaced if it exists)."""
    if suffix == "gpkg":
        await _write_geopackage(conn, layer, path)
        return
    blocks = geojson(conn, layer) if suffix == "geojson" else csv(conn, layer)
    with open(path, "wb") as out:
        async for block in blocks:
            await asyncio.to_thread(out.write, block)


async def _write_geopackage(conn: AsyncConnection[Any], layer: Layer, path: Path) -> None:
    statement, described = _gpkg_select(layer)
    path.unlink(missing_ok=True)
    written = False
    async with conn.transaction():
        async with conn.cursor(name="download_gpkg") as cur:
            await cur.execute(render(statement))
            while rows := await cur.fetchmany(GPKG_CHUNK_ROWS):
                await asyncio.to_thread(_write_chunk, str(path), layer, rows, described, written)
                written = True
    if not written:
        await asyncio.to_thread(_write_empty, str(path), layer, described)


def _write_empty(path: str, layer: Layer, described: list[tuple[str, str]]) -> None:
    from pyogrio import raw

    data, masks, offsets = _arrays([], described)
    raw.write(
        path,
        np.array([], dtype=object),
        data,
        [name for name, _ in described],
        layer=layer.id,
        driver="GPKG",
        geometry_type=_GPKG_GEOMETRY.get(layer.geometry_type, layer.geometry_type),
        crs="EPSG:4326",
        layer_options={"FID": GPKG_FID},
    )
