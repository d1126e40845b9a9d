"""A bytes-bounded LRU of built tiles, with exact invalidation by layer and by changed extent."""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

from isal import igzip

from tiles.grids import Bounds, TileXYZ, bounds, get_tms, lonlat_to_tile_bounds
from tiles.mvt import BUFFER, EXTENT

# ISA-L's level 1: on the in-place City's parcel tiles, a quarter of zlib's level-1 time (0.29 against 1.14 ms for
# a 100 KiB tile) for 2% more bytes; any gzip reader takes it. zlib's level 1 was itself a fifth of level 6's time.
GZIP_LEVEL = 1
OFFLOAD_ABOVE_BYTES = 64 * 1024
ENTRY_OVERHEAD_BYTES = 200  # key, dataclass and dict slots: counted so many tiny tiles cannot exceed the bound


@dataclass(frozen=True)
class BuiltTile:
    """A tile as served: raw MVT bytes, their gzip form and a strong ETag."""

    raw: bytes
    gz: bytes
    etag: str

    @classmethod
    def of(cls, raw: bytes) -> BuiltTile:
        """Compress and fingerprint raw MVT bytes once, when the tile is built."""
        etag = '"' + hashlib.blake2b(raw, digest_size=16).hexdigest() + '"'
        return cls(raw, igzip.compress(raw, GZIP_LEVEL, mtime=0) if raw else b"", etag)

    @classmethod
    def part(cls, raw: bytes) -> BuiltTile:
        """A layer's share of composite tiles: only its raw bytes are ever used, so nothing is compressed."""
        return cls(raw, b"", "")

    @classmethod
    async def build(cls, raw: bytes) -> BuiltTile:
        """`of`, in a worker thread for large tiles: ISA-L releases the GIL, so other requests go on meanwhile."""
        if len(raw) < OFFLOAD_ABOVE_BYTES:
            return cls.of(raw)
        return await asyncio.to_thread(cls.of, raw)

    @property
    def size(self) -> int:
        """Bytes held in memory for this tile."""
        return len(self.raw) + len(self.gz) + ENTRY_OVERHEAD_BYTES


class TileKey(NamedTuple):
    """What a cached tile depends on: the layers and their versions, and the tile address."""

    layers: tuple[str, ...]
    versions: tuple[int, ...]
    tile: TileXYZ
    part: bool = False  # a layer's raw share of composites, not a servable tile


@dataclass
class CacheStats:
    """Counters, for metrics and tests."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    invalidations: int = 0


@dataclass
class TileCache:
    """An in-process LRU bounded by bytes. Only tiles of public layers may be put here."""

    max_bytes: int
    stats: CacheStats = field(default_factory=CacheStats)
    _entries: OrderedDict[TileKey, BuiltTile] = field(default_factory=OrderedDict)
    # Per layer, per grid and zoom, per column and row: the cached tiles that include the layer there. An edit then
    # looks only at the few tiles around its extent, not at every cached tile of the layer.
    _by_layer: dict[str, dict[tuple[str, int], dict[tuple[int, int], set[TileKey]]]] = field(default_factory=dict)
    _bytes: int = 0

    @property
    def bytes_used(self) -> int:
        """Bytes held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: TileKey) -> BuiltTile | None:
        """A cached tile (now most recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            self.stats.misses += 1
            return None
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return entry

    def put(self, key: TileKey, tile: BuiltTile) -> None:
        """Keep a tile, evicting the least recently used ones beyond the byte bound."""
        if tile.size > self.max_bytes:
            return
        self._drop(key)
        self._entries[key] = tile
        self._bytes += tile.size
        where = (key.tile.tms, key.tile.z)
        for layer in key.layers:
            self._by_layer.setdefault(layer, {}).setdefault(where, {}).setdefault((key.tile.x, key.tile.y), set()).add(
                key
            )
        while self._bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.stats.evictions += 1

    def _drop(self, key: TileKey) -> None:
        tile = self._entries.pop(key, None)
        if tile is None:
            return
        self._bytes -= tile.size
        where, column_row = (key.tile.tms, key.tile.z), (key.tile.x, key.tile.y)
        for layer in key.layers:
            zooms = self._by_layer.get(layer, {})
            cells = zooms.get(where, {})
            keys = cells.get(column_row)
            if keys is None:
                continue
            keys.discard(key)
            if not keys:
                del cells[column_row]
                if not cells:
                    del zooms[where]
                    if not zooms:
                        del self._by_layer[layer]

    def _keys_of(self, layer_id: str) -> list[TileKey]:
        zooms = self._by_layer.get(layer_id, {})
        return [key for cells in zooms.values() for keys in cells.values() for key in keys]

    def invalidate_layer(self, layer_id: str) -> int:
        """Drop every tile that includes the layer. Returns how many were dropped."""
        keys = self._keys_of(layer_id)
        for key in keys:
            self._drop(key)
        self.stats.invalidations += len(keys)
        return len(keys)

    def invalidate_extent(self, layer_id: str, lonlat_bbox: tuple[float, float, float, float]) -> int:
        """Drop exactly the tiles of the layer whose buffered bounds meet the changed extent.

        Per grid and zoom, only the cached tiles in the columns and rows around the extent are tested (one more on
        each side: a tile's buffer is less than a tile wide), or every cached tile there when they are fewer."""
        found: list[TileKey] = []
        projected: dict[str, Bounds] = {}
        for (tms, z), cells in self._by_layer.get(layer_id, {}).items():
            if tms not in projected:
                projected[tms] = lonlat_to_tile_bounds(tms, lonlat_bbox)
            change = projected[tms]
            near = _columns_rows(tms, z, lonlat_bbox)
            if near is None or len(near[0]) * len(near[1]) >= len(cells):
                candidates = [key for keys in cells.values() for key in keys]
            else:
                columns, rows = near
                candidates = [key for x in columns for y in rows for key in cells.get((x, y), ())]
            found += [key for key in candidates if _meets(bounds(key.tile), change)]
        for key in found:
            self._drop(key)
        self.stats.invalidations += len(found)
        return len(found)

    def clear(self) -> None:
        """Drop everything (after a gap in change notices, nothing cached can be trusted)."""
        self.stats.invalidations += len(self._entries)
        self._entries.clear()
        self._by_layer.clear()
        self._bytes = 0


def _columns_rows(tms: str, z: int, lonlat_bbox: tuple[float, float, float, float]) -> tuple[range, range] | None:
    """The columns and rows whose tiles may meet the change (the tiles under it and one more on each side), None
    when the box cannot be placed on the grid."""
    west, south, east, north = lonlat_bbox
    if not all(math.isfinite(v) for v in lonlat_bbox):
        return None
    grid = get_tms(tms)
    top_left, bottom_right = grid.tile(west, north, z, truncate=True), grid.tile(east, south, z, truncate=True)
    return range(top_left.x - 1, bottom_right.x + 2), range(top_left.y - 1, bottom_right.y + 2)


def _meets(tile: Bounds, change: Bounds) -> bool:
    # A tile draws features up to BUFFER units beyond its edges, so a change that near it alters it too.
    margin = (tile.xmax - tile.xmin) * BUFFER / EXTENT
    return not (
        change.xmax < tile.xmin - margin
        or change.xmin > tile.xmax + margin
        or change.ymax < tile.ymin - margin
        or change.ymin > tile.ymax + margin
    )
