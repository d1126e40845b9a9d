"""Deterministic demo City: synthetic layers in Calgary's extent, one GeoPackage per layer.

Nothing here is real City data: places, addresses and people are invented, e-mail addresses use the
reserved `example.invalid` domain and phone numbers the fictional 555-01xx range. The same seed, scale
and `now` give identical attribute values and geometries. Each layer draws from its own random stream
(`numpy.random.default_rng([layer offset, seed])`), so changing one layer never shifts another.

Geometry is built in metres on a local equirectangular plane centred on the city and mapped to
longitude/latitude by an affine map: straight edges stay straight, so cells sharing an edge in metres
share it exactly in degrees. `parcels` is written in EPSG:3776 (NAD83 / Alberta 3TM ref merid 114 W) to
exercise reprojection on ingest; every other layer in EPSG:4326.

Opening hours (`facilities.opening_hours`) are in the OpenStreetMap `opening_hours` syntax, in local time
(America/Edmonton): `Mo-Th 09:00-21:00; Fr 09:00-18:00; Sa 10:00-17:00; Su 12:00-17:00; PH off; 2026 Feb 16 off`.
`PH off` closes on national public holidays; Alberta's Family Day is written out as dated rules. See
`layers.queries.hours` for how they are evaluated.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
from shapely.geometry import Polygon

from layers.demo.builders import _BUILDERS
from layers.demo.shapes import BOUNDARY_STREAM, _boundary_m, _City, _to_lonlat
from layers.demo.shapes import TIMEZONE as TIMEZONE

BASE_COUNTS: dict[str, int] = {
    "wards": 14, "communities": 200, "facilities": 100, "roads": 750, "water_mains": 300, "streetlights": 1000,
    "parcels": 1000, "events": 200, "service_requests": 5000,
}  # fmt: skip
FIXED_COUNT_LAYERS = frozenset({"wards", "communities"})  # administrative areas do not grow with scale
LAYER_IDS = tuple(BASE_COUNTS)
BENCH_SCALE = 200
DEFAULT_SEED = 20261126
EXTENT_LONLAT = (-114.32, 50.84, -113.86, 51.21)

_STREAMS = {name: i + BOUNDARY_STREAM + 1 for i, name in enumerate(LAYER_IDS)}


def layer_counts(scale: float) -> dict[str, int]:
    """The number of features of each layer at `scale`."""
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, not {scale!r}")
    return {k: n if k in FIXED_COUNT_LAYERS else max(1, round(n * scale)) for k, n in BASE_COUNTS.items()}


def city_boundary(seed: int = DEFAULT_SEED) -> Polygon:
    """The demo City's boundary for `seed`, in longitude/latitude (EPSG:4326)."""
    return _to_lonlat(_boundary_m(seed))


def generate(
    out_dir: Path,
    *,
    scale: float = 1.0,
    seed: int = DEFAULT_SEED,
    now: datetime | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Path]:
    """Write one GeoPackage per demo layer into `out_dir` and return {layer id: path}."""
    counts = layer_counts(scale)
    if seed < 0:
        raise ValueError("seed must be a non-negative integer")
    if now is None:
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=UTC)  # a naive time is taken as UTC, like everywhere in the server
    city = _City(boundary=_boundary_m(seed), now=now.astimezone(UTC))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for done, layer_id in enumerate(LAYER_IDS, start=1):
        rng = np.random.default_rng([_STREAMS[layer_id], seed])
        frame = _BUILDERS[layer_id](city, rng, counts[layer_id])
        written[layer_id] = _write(frame, out_dir, layer_id)
        del frame  # one layer in memory at a time
        if progress is not None:
            progress(layer_id, done, len(LAYER_IDS))
    return written


def _write(frame: gpd.GeoDataFrame, out_dir: Path, layer_id: str) -> Path:
    final = out_dir / f"{layer_id}.gpkg"
    partial = out_dir / f".{layer_id}.partial.gpkg"  # never leave a half-written file under the real name
    partial.unlink(missing_ok=True)
    frame.to_file(partial, layer=layer_id, driver="GPKG", engine="pyogrio")
    os.replace(partial, final)
    return final


# --- geometry helpers (metres on the local plane) -------------------------------------------------------
