"""A tile seen from EPSG:4326: its bounds in degrees and its transform, computed once per tile in Python.

Tables published in place keep longitude/latitude only. Instead of running `ST_Transform` on every row, the tile
plans bind these numbers:
- the tile's (buffered) bounds in degrees, exact, since Web Mercator maps a longitude/latitude box to a box;
- the size floor in degrees at the tile's latitude, so it is tested on each geometry's stored box;
- an affine map from degrees to Web Mercator metres: exact in x (linear in longitude), and in y the secant through
  the tile's top and bottom edges, exact on both edges (so neighbouring tiles meet exactly) and off by at most
  `affine_error_units` tile units in between. Plans use it only at zooms where that error stays under
  `MAX_AFFINE_ERROR_UNITS` over the layer's extent (`affine_zooms`).
"""

from __future__ import annotations

import math

EARTH_RADIUS_M = 6378137.0  # the sphere of EPSG:3857
M_PER_DEGREE_X = EARTH_RADIUS_M * math.pi / 180  # metres of Web Mercator x per degree of longitude, anywhere
MAX_LATITUDE = 85.0511287798066  # the edge of the Web Mercator square
# ST_AsMVTGeom rounds every vertex to a whole tile unit: an error below one unit moves a vertex by at most one unit
# (1/16 of a pixel on a 256-pixel tile), which no map can show.
MAX_AFFINE_ERROR_UNITS = 1.0


def mercator_y(lat: float) -> float:
    """Web Mercator y (metres) of a latitude in degrees."""
    phi = math.radians(max(-MAX_LATITUDE, min(MAX_LATITUDE, lat)))
    return EARTH_RADIUS_M * math.log(math.tan(math.pi / 4 + phi / 2))


def latitude(y: float) -> float:
    """The latitude in degrees of a Web Mercator y (metres)."""
    return math.degrees(2 * math.atan(math.exp(y / EARTH_RADIUS_M)) - math.pi / 2)


def longitude(x: float) -> float:
    """The longitude in degrees of a Web Mercator x (metres)."""
    return x / M_PER_DEGREE_X


def affine_y(ymin: float, ymax: float) -> tuple[float, float]:
    """(scale, offset) of the secant y = scale * latitude + offset through the Mercator edges ymin and ymax."""
    lat_min, lat_max = latitude(ymin), latitude(ymax)
    scale = (ymax - ymin) / (lat_max - lat_min)
    return scale, ymin - scale * lat_min


def affine_error_units(z: int, lat: float, extent: int) -> float:
    """How far (in tile units) the secant strays from Mercator inside a zoom-z tile at latitude `lat`, at most.

    The secant's error over a span of dphi radians is dphi^2/8 * |y''| with y'' = R sin(phi) / cos(phi)^2; a tile
    unit is R dphi / (cos(phi) extent) metres, and dphi = 2 pi cos(phi) / 2^z: the error is extent * pi * sin|phi|
    / 2^(z+2) (under one unit from zoom 12 on, anywhere), a little more at the poleward edge: a 10 % margin.
    """
    phi = math.radians(min(abs(lat), MAX_LATITUDE))
    return 1.1 * extent * math.pi * math.sin(phi) / 2 ** (z + 2)


def affine_zooms(bbox: tuple[float, float, float, float] | None, zooms: range, extent: int) -> frozenset[int]:
    """The zooms at which the affine map is precise enough everywhere in the box (none when the box is unknown)."""
    if bbox is None:
        return frozenset()
    worst = max(abs(bbox[1]), abs(bbox[3]))
    return frozenset(z for z in zooms if affine_error_units(z, worst, extent) <= MAX_AFFINE_ERROR_UNITS)
