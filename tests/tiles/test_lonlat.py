"""The tile's transform from degrees: exact boxes, and an affine map whose error stays within its stated bound."""

from __future__ import annotations

import morecantile
from hypothesis import given
from hypothesis import strategies as st

from tiles.grids import TileXYZ
from tiles.lonlat import affine_error_units, affine_y, affine_zooms, latitude, mercator_y
from tiles.mvt import EXTENT, tile_params

WMQ = morecantile.tms.get("WebMercatorQuad")


@given(st.floats(-180, 180), st.floats(-84, 84), st.integers(0, 20))
def test_the_degree_box_is_the_tile_box(lon: float, lat: float, z: int) -> None:
    t = WMQ.tile(lon, lat, z)
    params = tile_params(TileXYZ("WebMercatorQuad", z, t.x, t.y))
    geographic = WMQ.bounds(t)
    assert abs(params["lon_min"] - geographic.left) < 1e-9 and abs(params["lat_max"] - geographic.top) < 1e-9
    assert abs(params["lat_min"] - geographic.bottom) < 1e-9 and abs(params["lon_max"] - geographic.right) < 1e-9


@given(st.floats(-84, 84), st.integers(4, 20), st.floats(0, 1))
def test_the_affine_map_strays_less_than_its_bound(lat: float, z: int, where: float) -> None:
    t = WMQ.tile(0, lat, z)
    b = WMQ.xy_bounds(t)
    scale, offset = affine_y(b.bottom, b.top)
    south, north = latitude(b.bottom), latitude(b.top)
    sample = south + (north - south) * where
    error_units = abs(scale * sample + offset - mercator_y(sample)) / ((b.top - b.bottom) / EXTENT)
    assert error_units <= affine_error_units(z, max(abs(south), abs(north)), EXTENT) + 1e-6
    # Exact on both edges, so neighbouring tiles meet.
    assert abs(scale * north + offset - b.top) < 1e-6 and abs(scale * south + offset - b.bottom) < 1e-6


def test_affine_zooms_are_the_precise_ones_over_the_extent() -> None:
    calgary = (-114.32, 50.84, -113.86, 51.21)
    assert affine_zooms(calgary, range(0, 23), EXTENT) == frozenset(range(12, 23))
    assert affine_zooms((-10, -1, 10, 1), range(0, 23), EXTENT) >= frozenset(range(6, 23))
    assert affine_zooms(None, range(0, 23), EXTENT) == frozenset()
