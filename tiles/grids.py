"""Tile matrix sets (from morecantile) and the validation of tile coordinates."""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import morecantile
from morecantile import TileMatrixSet

from layers.errors import InvalidParameter, NotFound

# The grids we serve. WebMercatorQuad is what every web map uses; the rest of the code takes any morecantile grid.
SUPPORTED_TMS = ("WebMercatorQuad",)
DEFAULT_TMS = "WebMercatorQuad"
MAX_ZOOM = 24


class TileXYZ(NamedTuple):
    """A validated tile address in a tile matrix set."""

    tms: str
    z: int
    x: int
    y: int


class Bounds(NamedTuple):
    """A tile's bounds in its grid's CRS."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float


@lru_cache(maxsize=len(SUPPORTED_TMS))
def get_tms(tms_id: str) -> TileMatrixSet:
    """A supported tile matrix set by id; NotFound for any other."""
    if tms_id not in SUPPORTED_TMS:
        raise NotFound(f"no tile matrix set named {tms_id!r}", parameter="tileMatrixSetId")
    return morecantile.tms.get(tms_id)


def parse_int(text: str, parameter: str) -> int:
    """A non-negative decimal integer of reasonable size, else InvalidParameter naming the parameter."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        raise InvalidParameter(f"{parameter} must be a non-negative integer", parameter=parameter)
    return int(text)


def tile(tms_id: str, z: int, x: int, y: int) -> TileXYZ:
    """Check that x/y exist at zoom z of the grid (400 otherwise), and return the tile address."""
    tms = get_tms(tms_id)
    if not 0 <= z <= min(MAX_ZOOM, tms.maxzoom):
        raise InvalidParameter(f"zoom {z} is outside 0..{min(MAX_ZOOM, tms.maxzoom)}", parameter="z")
    matrix = tms.matrix(z)
    if not 0 <= x < matrix.matrixWidth:
        raise InvalidParameter(f"x (tileCol) must be in 0..{matrix.matrixWidth - 1} at zoom {z}", parameter="x")
    if not 0 <= y < matrix.matrixHeight:
        raise InvalidParameter(f"y (tileRow) must be in 0..{matrix.matrixHeight - 1} at zoom {z}", parameter="y")
    return TileXYZ(tms_id, z, x, y)


def bounds(t: TileXYZ) -> Bounds:
    """The tile's bounds in its grid's CRS (metres for WebMercatorQuad)."""
    b = get_tms(t.tms).xy_bounds(morecantile.Tile(t.x, t.y, t.z))
    return Bounds(b.left, b.bottom, b.right, b.top)


def tiles_over(tms_id: str, lonlat_bbox: tuple[float, float, float, float], zooms: list[int]) -> list[TileXYZ]:
    """Every tile of the given zooms that covers a longitude/latitude box."""
    tms = get_tms(tms_id)
    return [TileXYZ(tms_id, t.z, t.x, t.y) for t in tms.tiles(*lonlat_bbox, zooms)]


def lonlat_to_tile_bounds(tms_id: str, lonlat_bbox: tuple[float, float, float, float]) -> Bounds:
    """A longitude/latitude box in the grid's CRS."""
    tms = get_tms(tms_id)
    xmin, ymin = tms.xy(lonlat_bbox[0], lonlat_bbox[1])
    xmax, ymax = tms.xy(lonlat_bbox[2], lonlat_bbox[3])
    return Bounds(xmin, ymin, xmax, ymax)
