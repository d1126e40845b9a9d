"""Geometry and attribute helpers of the demo City: the local plane, sampling, lines, names, addresses."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import Polygon

TIMEZONE = "America/Edmonton"
BOUNDARY_STREAM = 0  # the boundary's random stream; layer i draws from stream i + 1 (see generate)
_LON0, _LAT0 = -114.09, 51.025  # the local plane's origin, the middle of the extent
_M_PER_DEG_LAT = 111_132.0
_M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(_LAT0))
_DOWNTOWN_M = np.array([1_750.0, 2_220.0])  # about (-114.065, 51.045) on the local plane
_GRID_M = 160.0  # one numbered street or avenue every 160 m, as on Calgary's grid

_PLACES = np.array(
    "Aspen Birch Cedar Chinook Cougar Coyote Crane Elk Fescue Foothill Prairie Heron Juniper Kestrel Larch"
    " Lupine Magpie Maple Meadowlark Moraine Osprey Pine Poplar Quartz Sage Saskatoon Silverberry Sparrow"
    " Spruce Stone Sunset Tamarack Thistle Willow Yarrow Amber Bluebell Clover Driftwood Falcon Granite"
    " Harvest Ironwood Lantern Marigold Northwind Pebble Shale".split()
)
_PLACE_SUFFIXES = np.array(
    "Ridge Park Heights Hills Meadows Crossing Landing Springs Point Glen Valley Estates Green Gardens"
    " Village Bluffs Commons Terrace".split()
)


@dataclass(frozen=True)
class _City:
    boundary: Polygon  # metres on the local plane
    now: datetime


def _lonlat_coords(xy: np.ndarray) -> np.ndarray:
    return np.column_stack([_LON0 + xy[:, 0] / _M_PER_DEG_LON, _LAT0 + xy[:, 1] / _M_PER_DEG_LAT])


def _to_lonlat(geoms: Any) -> Any:
    return shapely.transform(geoms, _lonlat_coords)


def _points_lonlat(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return shapely.points(_lonlat_coords(np.column_stack([x, y])))


def _boundary_m(seed: int) -> Polygon:
    rng = np.random.default_rng([BOUNDARY_STREAM, seed])
    theta = np.linspace(0.0, 2 * np.pi, 360, endpoint=False)
    phase = rng.uniform(0.0, 2 * np.pi, 3)
    # sum(amplitude * k**2) < 1 - max amplitude keeps the curve convex: every Voronoi cell clipped to it
    # is then a single Polygon, and the shape stays inside the extent (max radius 1.066).
    r = 1 + 0.04 * np.sin(2 * theta + phase[0]) + 0.02 * np.sin(3 * theta + phase[1])
    r += 0.006 * np.sin(5 * theta + phase[2])
    return Polygon(np.column_stack([14_000.0 * r * np.cos(theta), 18_500.0 * r * np.sin(theta)]))


def _sample_xy(
    rng: np.random.Generator, area: Polygon, n: int, clusters: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """n points inside `area`: Gaussian clusters (rows x, y, sigma_m, weight) over a uniform background."""
    shapely.prepare(area)
    minx, miny, maxx, maxy = area.bounds
    parts, have = [], 0
    while have < n:  # rejection sampling, vectorised by batch
        k = int((n - have) * 1.4) + 64
        x, y = rng.uniform(minx, maxx, k), rng.uniform(miny, maxy, k)
        if clusters is not None:
            p = np.append(clusters[:, 3], 1.0 - clusters[:, 3].sum())
            comp = rng.choice(p.size, size=k, p=p)
            hit = comp < len(clusters)
            c = clusters[comp[hit]]
            x[hit], y[hit] = rng.normal(c[:, 0], c[:, 2]), rng.normal(c[:, 1], c[:, 2])
        inside = shapely.contains_xy(area, x, y)
        parts.append(np.column_stack([x[inside], y[inside]]))
        have += int(inside.sum())
    xy = np.concatenate(parts)[:n]
    return xy[:, 0], xy[:, 1]


def _clusters(rng: np.random.Generator, city: _City, downtown: float, hotspots: int, share: float) -> np.ndarray:
    """Downtown plus `hotspots` neighbourhood centres, as cluster rows for _sample_xy."""
    hx, hy = _sample_xy(rng, city.boundary, hotspots)
    rows = [[*_DOWNTOWN_M, 2_500.0, downtown]]
    rows += [[x, y, s, share / hotspots] for x, y, s in zip(hx, hy, rng.uniform(700, 1_800, hotspots), strict=True)]
    return np.array(rows)


def _tessellate(rng: np.random.Generator, area: Polygon, n: int, iterations: int = 4) -> np.ndarray:
    """n Voronoi cells tiling `area`, relaxed a few times (Lloyd) so they are of similar size."""
    x, y = _sample_xy(rng, area, n)
    seeds = shapely.points(x, y)
    frame = area.buffer(5_000).envelope
    for i in range(iterations + 1):
        cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=frame, ordered=True))
        cells = shapely.intersection(cells, area)
        if i < iterations:
            seeds = shapely.centroid(cells)
    return cells


def _lines_m(
    rng: np.random.Generator,
    city: _City,
    seg_m: np.ndarray,
    angle: np.ndarray,
    wobble_m: np.ndarray,
    vertices: int,
    snap: np.ndarray,
) -> np.ndarray:
    """Coordinates (n, vertices, 2) of wobbly lines lying inside the boundary; `snap` puts them on the grid."""
    n = seg_m.size
    coords = np.empty((n, vertices, 2))
    todo = np.arange(n)
    for _ in range(200):
        if todo.size == 0:
            return coords
        k = todo.size
        x0, y0 = _sample_xy(rng, city.boundary, k)
        dx, dy = np.cos(angle[todo]), np.sin(angle[todo])
        east_west = np.abs(dx) > np.abs(dy)
        grid = snap[todo]
        # Grid roads run along a street or avenue line, a little off it (surveys are not perfect).
        y0 = np.where(grid & east_west, np.round(y0 / _GRID_M) * _GRID_M + rng.normal(0, 4, k), y0)
        x0 = np.where(grid & ~east_west, np.round(x0 / _GRID_M) * _GRID_M + rng.normal(0, 4, k), x0)
        steps = seg_m[todo, None] * rng.uniform(0.85, 1.15, (k, vertices - 1))
        along = np.concatenate([np.zeros((k, 1)), np.cumsum(steps, axis=1)], axis=1)
        along -= along[:, -1:] / 2  # the sampled point is the middle of the line
        perp = np.cumsum(rng.normal(0, 1, (k, vertices)) * wobble_m[todo, None], axis=1)
        perp -= perp.mean(axis=1, keepdims=True)
        xy = np.stack(
            [
                x0[:, None] + along * dx[:, None] - perp * dy[:, None],
                y0[:, None] + along * dy[:, None] + perp * dx[:, None],
            ],
            axis=-1,
        )
        ok = shapely.contains(city.boundary, shapely.linestrings(xy))
        coords[todo[ok]] = xy[ok]
        todo = todo[~ok]
    raise RuntimeError("could not place every line inside the city boundary")


def _line_geoms(coords_m: np.ndarray) -> np.ndarray:
    n, v, _ = coords_m.shape
    return shapely.linestrings(_lonlat_coords(coords_m.reshape(-1, 2)).reshape(n, v, 2))


# --- attribute helpers -----------------------------------------------------------------------------------


def _allocate(rng: np.random.Generator, n: int, shares: dict[str, float]) -> np.ndarray:
    """Exactly proportional labels (largest remainder), shuffled; every label appears once n allows."""
    p = np.array(list(shares.values()))
    raw = n * p / p.sum()
    counts = np.floor(raw).astype(int)
    counts[np.argsort(counts - raw, kind="stable")[: n - counts.sum()]] += 1
    return rng.permutation(np.repeat(np.array(list(shares)), counts))


def _pick(rng: np.random.Generator, n: int, shares: dict[str, float]) -> np.ndarray:
    p = np.array(list(shares.values()))
    return np.array(list(shares))[rng.choice(p.size, size=n, p=p / p.sum())]


def _place_names(rng: np.random.Generator, n: int) -> np.ndarray:
    first = _PLACES[rng.integers(0, _PLACES.size, n)]
    return np.char.add(np.char.add(first, " "), _PLACE_SUFFIXES[rng.integers(0, _PLACE_SUFFIXES.size, n)])


def _quadrant(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # Calgary addresses carry a quadrant relative to Centre Street (x) and Centre Avenue (y).
    return np.char.add(np.where(y >= _DOWNTOWN_M[1], "N", "S"), np.where(x >= _DOWNTOWN_M[0], "E", "W"))


def _grid_numbers(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    street = (np.abs(x - _DOWNTOWN_M[0]) // _GRID_M).astype(int) + 1
    avenue = (np.abs(y - _DOWNTOWN_M[1]) // _GRID_M).astype(int) + 1
    return street, avenue


def _addresses(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> list[str]:
    street, avenue = _grid_numbers(x, y)
    on_avenue = rng.random(x.size) < 0.5
    house = np.where(on_avenue, street, avenue) * 100 + rng.integers(1, 99, x.size)
    kind = np.where(on_avenue, "Ave", "St")
    return [
        f"{h} {a if o else s} {k} {q}"
        for h, a, s, o, k, q in zip(house, avenue, street, on_avenue, kind, _quadrant(x, y), strict=True)
    ]


def _phones(rng: np.random.Generator, n: int) -> list[str]:
    return [f"403-555-01{k:02d}" for k in rng.integers(0, 100, n)]  # 555-0100..0199 is reserved as fictional


def _utc(seconds: np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(seconds, unit="s", utc=True))


def _frame(columns: dict[str, object], geometry: np.ndarray, crs: str = "EPSG:4326") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(columns, geometry=geometry, crs=crs)


# --- layers ----------------------------------------------------------------------------------------------
