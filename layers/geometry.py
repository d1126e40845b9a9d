"""Geometries as layers store them: 2D, valid, non-empty, and of the layer's one kind (single promoted to multi).

Shared by loads (whole files) and edits (one feature at a time), so both repair the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

_SINGLE_TYPE_IDS = (0, 1, 3)  # Point, LineString, Polygon
_MULTI = {"MultiPoint": shapely.multipoints, "MultiLineString": shapely.multilinestrings,
          "MultiPolygon": shapely.multipolygons}  # fmt: skip


def repair(geoms: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], int]:
    """2D geometries with invalid ones made valid; returns them, a mask of those to keep (not missing or empty),
    and how many were repaired. Z and M are dropped: layers are 2D, and a file may mix 2D and 3D features."""
    geoms = shapely.force_2d(geoms)
    invalid = ~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)
    repaired = int(invalid.sum())
    if repaired:
        fixed = shapely.make_valid(geoms[invalid])
        dims = shapely.get_dimensions(geoms[invalid])
        # make_valid can turn a bad polygon into a collection of a polygon and stray lines: keep the parts of the
        # original dimension so the layer keeps one kind of geometry.
        geoms = geoms.copy()
        geoms[invalid] = np.array([_same_dimension(g, d) for g, d in zip(fixed, dims, strict=True)], dtype=object)
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    return geoms, keep, repaired


def _same_dimension(geom: Any, dim: int) -> Any:
    if geom.geom_type != "GeometryCollection":
        return geom
    parts = [p for p in shapely.get_parts(geom) if shapely.get_dimensions(p) == dim]
    return shapely.union_all(parts) if parts else shapely.Point()


def to_multi(geoms: np.ndarray[Any, Any], geometry_type: str) -> np.ndarray[Any, Any]:
    """Single geometries made multi when the layer's type is Multi* (a file or an edit may send either)."""
    make = _MULTI.get(geometry_type)
    if make is None:
        return geoms
    single = np.isin(shapely.get_type_id(geoms), _SINGLE_TYPE_IDS)
    if not single.any():
        return geoms
    promoted = geoms.copy()
    promoted[single] = make(geoms[single], indices=np.arange(int(single.sum())))
    return promoted
