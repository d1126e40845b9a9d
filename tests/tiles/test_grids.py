"""Tile grid math and tile-coordinate validation."""

from __future__ import annotations

import morecantile
import pytest
from hypothesis import given
from hypothesis import strategies as st

from layers.errors import InvalidParameter, NotFound
from tiles import grids


@given(z=st.integers(0, 22), data=st.data())
def test_every_valid_tile_round_trips_through_its_bounds(z: int, data: st.DataObject) -> None:
    x = data.draw(st.integers(0, 2**z - 1))
    y = data.draw(st.integers(0, 2**z - 1))
    t = grids.tile("WebMercatorQuad", z, x, y)
    b = grids.bounds(t)
    centre_lon, centre_lat = morecantile.tms.get("WebMercatorQuad").lnglat((b.xmin + b.xmax) / 2, (b.ymin + b.ymax) / 2)
    assert morecantile.tms.get("WebMercatorQuad").tile(centre_lon, centre_lat, z) == morecantile.Tile(x, y, z)


@given(z=st.integers(0, 24), offset=st.integers(0, 10))
def test_coordinates_past_the_edge_are_refused(z: int, offset: int) -> None:
    with pytest.raises(InvalidParameter) as too_far:
        grids.tile("WebMercatorQuad", z, 2**z + offset, 0)
    assert too_far.value.parameter == "x"
    with pytest.raises(InvalidParameter):
        grids.tile("WebMercatorQuad", z, 0, 2**z + offset)


@pytest.mark.parametrize("text", ["-1", "1.5", "1e3", "", " 1", "99999999999", "０", "0x10", "1;2"])
def test_non_integers_and_huge_numbers_are_refused(text: str) -> None:
    with pytest.raises(InvalidParameter):
        grids.parse_int(text, "z")


def test_zoom_beyond_the_grid_and_unknown_grids_are_refused() -> None:
    with pytest.raises(InvalidParameter):
        grids.tile("WebMercatorQuad", 25, 0, 0)
    with pytest.raises(NotFound):
        grids.get_tms("NoSuchQuad")


def test_the_benchmark_tile_list_has_844_tiles() -> None:
    tiles = grids.tiles_over("WebMercatorQuad", (-114.32, 50.84, -113.86, 51.21), [12, 13, 14])
    assert len(tiles) == 844 and len(set(tiles)) == 844
