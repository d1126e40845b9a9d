"""Serving a tile: cache first, then the database; composite tiles are their layers' tiles end to end."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection

from layers.catalogue.records import Layer
from tiles.cache import BuiltTile, TileCache, TileKey
from tiles.grids import TileXYZ
from tiles.source import TileSources


@dataclass(frozen=True)
class TileResult:
    """A served tile, whether it holds anything non-public, and whether it came from the cache."""

    tile: BuiltTile
    public: bool
    cache_hit: bool


async def get_tile(
    connection: Callable[[], AbstractAsyncContextManager[AsyncConnection[Any]]],
    sources: TileSources,
    cache: TileCache,
    layers: Sequence[Layer],
    tile: TileXYZ,
) -> TileResult:
    """One MVT holding one layer per catalogue layer, built or taken from the cache.

    `layers` are already resolved for the caller; `connection` lends a database connection when one is needed.
    Tiles holding a non-public layer never enter the cache.
    """
    public = all(layer.is_public for layer in layers)
    key = TileKey(tuple(layer.id for layer in layers), tuple(layer.version for layer in layers), tile)
    if public:
        cached = cache.get(key)
        if cached is not None:
            return TileResult(cached, public, cache_hit=True)
    parts: list[bytes] = []
    missing: list[tuple[int, Layer]] = []
    share = public and len(layers) > 1 and cache.max_bytes > 0
    for index, layer in enumerate(layers):
        part = cache.get(_part_key(layer, tile)) if share else None
        parts.append(part.raw if part is not None else b"")
        if part is None:
            missing.append((index, layer))
    if missing:
        async with connection() as conn:
            for index, layer in missing:
                raw = await sources.get(layer.id).build(conn, tile)
                parts[index] = raw
                if share:
                    cache.put(_part_key(layer, tile), BuiltTile.part(raw))
    # MVT layers are independent protobuf messages: concatenating single-layer tiles makes a valid composite.
    built = await BuiltTile.build(b"".join(parts))
    if public:
        cache.put(key, built)
    return TileResult(built, public, cache_hit=False)


def _part_key(layer: Layer, tile: TileXYZ) -> TileKey:
    return TileKey((layer.id,), (layer.version,), tile, part=True)
