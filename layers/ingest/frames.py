"""Preparing a file's rows for a layer: read safely, in EPSG:4326, 2D, valid, typed, with an id; and as COPY text.

Nothing here touches the database: `load` stores what this prepares.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from psycopg.types.json import Jsonb

from layers.catalogue.manifest import LayerManifest
from layers.errors import IngestError
from layers.geometry import repair, to_multi
from layers.ingest.readers import MAX_ZIP_BYTES, read_file
from layers.ingest.register import GEOM, GEOM_3857

DEFAULT_ID = "fid"
# Web Mercator is undefined at the poles; a layer outside this range cannot be tiled.
MAX_LATITUDE = 85.05112878


@dataclass
class Frame:
    """A file's rows, ready to store: EPSG:4326, 2D, valid and non-empty geometries."""

    frame: gpd.GeoDataFrame
    repaired: int  # invalid geometries made valid
    dropped: int  # missing or empty geometries left out

    @property
    def columns(self) -> list[str]:
        """The attribute columns, in file order."""
        return [c for c in self.frame.columns if c != self.frame.geometry.name]


def read_frame(
    path: Path, *, layer: str | None = None, crs: str | None = None, max_unzipped_bytes: int = MAX_ZIP_BYTES
) -> Frame:
    """Read a file (see `readers`) and prepare its rows: reprojected, flattened to 2D, repaired."""
    frame = read_file(path, layer=layer, crs=crs, max_unzipped_bytes=max_unzipped_bytes)
    frame = frame.rename_geometry(GEOM) if frame.geometry.name != GEOM else frame
    frame = _to_wgs84(frame, path.name)
    frame, repaired, dropped = _repair(frame)
    return Frame(frame.reset_index(drop=True), repaired, dropped)


def as_timestamps(frame: gpd.GeoDataFrame, names: list[str | None]) -> None:
    """Make the named columns instants (UTC where a value has no offset), in place; 422 naming a bad value."""
    for name in names:
        if name is None or isinstance(frame[name].dtype, pd.DatetimeTZDtype):
            continue
        values = frame[name].astype("string")
        parsed = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
        bad = parsed.isna() & values.notna() & (values.str.strip() != "")
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise IngestError(
                f"feature {first}: {name} = {str(values.iloc[first])[:40]!r} is not a date and time (use ISO 8601)",
                parameter=name,
            )
        frame[name] = parsed


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
    geoms, keep, repaired = repair(frame.geometry.to_numpy())
    frame = frame.set_geometry(gpd.GeoSeries(geoms, index=frame.index, crs=frame.crs))
    return frame.loc[keep], repaired, int((~keep).sum())


def geometry_type(frame: gpd.GeoDataFrame, declared: str) -> str:
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
    # JSON only when every value is an object or a list: stop at the first that is not (text columns stop at once).
    values = series.dropna()
    return "jsonb" if len(values) and all(isinstance(v, dict | list) for v in values) else "text"


def column_types(frame: gpd.GeoDataFrame, manifest: LayerManifest) -> dict[str, str]:
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


def id_column(frame: gpd.GeoDataFrame, manifest: LayerManifest) -> str:
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


def promote_to_multi(frame: gpd.GeoDataFrame, geometry_type: str) -> None:
    """Make single geometries multi in place when the layer's type is Multi* (a file may mix the two)."""
    promoted = to_multi(frame.geometry.to_numpy(), geometry_type)
    frame[frame.geometry.name] = gpd.GeoSeries(promoted, index=frame.index, crs=frame.crs)


def copy_rows(frame: gpd.GeoDataFrame, columns: list[str], types: dict[str, str]) -> Iterator[tuple[Any, ...]]:
    """The frame's rows as Python values for a binary COPY, the geometry last as WKB (its SRID is the column's)."""
    values = [_python_values(frame[name], types[name]) for name in columns]
    wkb = map(Wkb, shapely.to_wkb(frame.geometry.to_numpy()))
    return zip(*values, wkb, strict=True)


def _python_values(series: pd.Series, pg_type: str) -> list[Any]:
    values = series.astype(object).where(series.notna(), None).tolist()
    if pg_type == "jsonb":
        return [None if v is None else Jsonb(v) for v in values]
    if pg_type == "text":
        return [v if v is None or isinstance(v, str) else str(v) for v in values]
    return values


class Wkb(bytes):
    """A geometry as WKB, sent as-is in a binary COPY (see `load.geometry_dumper`)."""
