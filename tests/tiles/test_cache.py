"""The tile cache: a byte bound that holds, and invalidation that drops exactly the touched tiles."""

from __future__ import annotations

import gzip
import random

import pytest

import tiles.cache
from tiles.cache import BuiltTile, TileCache, TileKey, _meets
from tiles.grids import Bounds, TileXYZ, bounds, lonlat_to_tile_bounds, tiles_over

CALGARY = (-114.32, 50.84, -113.86, 51.21)


def _key(layer: str, z: int, x: int, y: int, version: int = 1) -> TileKey:
    return TileKey((layer,), (version,), TileXYZ("WebMercatorQuad", z, x, y))


def test_built_tiles_carry_gzip_and_a_content_etag() -> None:
    tile = BuiltTile.of(b"abc" * 100)
    assert gzip.decompress(tile.gz) == tile.raw
    assert tile.etag == BuiltTile.of(b"abc" * 100).etag != BuiltTile.of(b"abd" * 100).etag
    assert BuiltTile.of(b"").gz == b""


def test_the_byte_bound_holds_and_the_least_recent_goes_first() -> None:
    cache = TileCache(max_bytes=10_000)
    for i in range(50):
        cache.put(_key("a", 14, i, 0), BuiltTile.of(bytes([i]) * 1000))
        assert cache.bytes_used <= 10_000
    assert cache.stats.evictions > 0
    assert cache.get(_key("a", 14, 0, 0)) is None
    assert cache.get(_key("a", 14, 49, 0)) is not None


def test_an_edit_drops_exactly_the_tiles_its_extent_touches() -> None:
    cache = TileCache(max_bytes=100_000_000)
    every = tiles_over("WebMercatorQuad", CALGARY, [12, 13, 14])
    for t in every:
        cache.put(TileKey(("a",), (1,), t), BuiltTile.of(b"x"))
        cache.put(TileKey(("b",), (1,), t), BuiltTile.of(b"y"))
    point = (-114.0719, 51.0447)  # one changed point, downtown
    dropped = cache.invalidate_extent("a", (*point, *point))
    # The point's own tile at each zoom, plus neighbours only when the point is within the tile buffer of an edge.
    assert 3 <= dropped <= 12
    touched = set(tiles_over("WebMercatorQuad", (*point, *point), [12, 13, 14]))
    for t in every:
        cached = cache.get(TileKey(("a",), (1,), t)) is not None
        if t in touched:
            assert not cached
        assert cache.get(TileKey(("b",), (1,), t)) is not None  # another layer keeps everything
    assert len(cache) == 2 * len(every) - dropped


def test_a_composite_tile_is_dropped_when_any_member_changes() -> None:
    cache = TileCache(max_bytes=1_000_000)
    t = TileXYZ("WebMercatorQuad", 14, 3000, 5000)
    composite = TileKey(("a", "b"), (1, 1), t)
    cache.put(composite, BuiltTile.of(b"ab"))
    assert cache.invalidate_layer("b") == 1
    assert cache.get(composite) is None and cache.bytes_used == 0


def test_an_edit_drops_what_testing_every_cached_tile_would_drop() -> None:
    rng = random.Random(20261127)
    tms = "WebMercatorQuad"
    for _ in range(200):
        cache, keys = TileCache(max_bytes=100_000_000), set()
        for _ in range(rng.randint(1, 300)):
            z = rng.randint(0, 16)
            layers = ("a", "c") if rng.random() < 0.3 else (rng.choice("ab"),)
            keys.add(TileKey(layers, (1,) * len(layers), TileXYZ(tms, z, rng.randrange(2**z), rng.randrange(2**z))))
        for key in keys:
            cache.put(key, BuiltTile.of(b"x"))
        lon, lat = rng.uniform(-180, 179), rng.uniform(-85, 84)
        box = (lon, lat, min(180, lon + rng.choice([0, 1e-4, 0.01, 1, 50])), min(85, lat + rng.choice([0, 0.01, 30])))
        change = lonlat_to_tile_bounds(tms, box)
        touched = {key for key in keys if "a" in key.layers and _meets(bounds(key.tile), change)}
        assert cache.invalidate_extent("a", box) == len(touched)
        assert set(cache._entries) == keys - touched


def test_an_edit_looks_only_at_the_cached_tiles_around_it(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = TileCache(max_bytes=100_000_000)
    every = tiles_over("WebMercatorQuad", CALGARY, [12, 13, 14])  # 844 tiles
    for t in every:
        cache.put(TileKey(("a",), (1,), t), BuiltTile.of(b"x"))
    looked: list[TileXYZ] = []

    def counted(t: TileXYZ) -> Bounds:
        looked.append(t)
        return bounds(t)

    monkeypatch.setattr(tiles.cache, "bounds", counted)
    point = (-114.0719, 51.0447)
    assert cache.invalidate_extent("a", (*point, *point)) >= 3
    assert 3 <= len(looked) <= 3 * 9  # the tile under the change and its neighbours, at each zoom
