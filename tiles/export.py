"""Static hosting: the public tiles of some layers written to a PMTiles v3 archive, for object storage or a CDN.

Every tile is built by the server's own path (`tiles.service.get_tile` over `TileSources`), so the archive holds what
`GET /tiles/{layers}/{z}/{x}/{y}.pbf` answers with `Accept-Encoding: gzip`: the same composite, the same zoom ranges,
the same gzip (byte for byte whenever PostgreSQL returns each layer's rows in the same order, which a query without
ORDER BY does not promise, between two of the server's own builds either). Empty tiles (the server's 204s) are left
out. Tiles are visited zoom by zoom along the archive's Hilbert order, a few built at once on a small pool, and
streamed to the `pmtiles` writer, so memory stays bounded whatever the zoom range; the archive is written beside its
destination and renamed into place only when it is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from layers.catalogue.records import Layer
from layers.catalogue.registry import Registry
from layers.catalogue.visibility import Principal
from layers.errors import Forbidden, InvalidParameter
from layers.priority import lower_backend_priority
from tiles.cache import BuiltTile, TileCache
from tiles.grids import DEFAULT_TMS, MAX_ZOOM, Bounds, TileXYZ, bounds, lonlat_to_tile_bounds
from tiles.mvt import BUFFER, EXTENT
from tiles.service import get_tile
from tiles.source import TileSources
from tiles.tilejson import archive_style, bounds_of, tileset_metadata

GENERATOR = "geoserver export pmtiles"
CENTER_ZOOM = 11  # where a map opened on the archive starts, as in the server's TileJSON


@dataclass(frozen=True)
class ExportPlan:
    """Which tiles an archive holds: the composite of `layers` at zooms `first_zoom`..`last_zoom`."""

    layers: tuple[Layer, ...]
    first_zoom: int
    last_zoom: int

    def zooms_of(self, layer: Layer) -> range:
        """The zooms of the range at which the server draws this layer."""
        return range(max(self.first_zoom, layer.min_zoom), min(self.last_zoom, layer.max_zoom) + 1)

    def drawn(self) -> list[Layer]:
        """The layers that appear at some zoom of the range (the others add nothing to any tile)."""
        return [layer for layer in self.layers if self.zooms_of(layer)]

    def tiles(self) -> Iterator[TileXYZ]:
        """Every tile that may hold something, zoom by zoom, in the archive's order."""
        for z in range(self.first_zoom, self.last_zoom + 1):
            boxes = [_reach(layer, z) for layer in self.layers if z in self.zooms_of(layer) and layer.bbox]
            if boxes:
                yield from _tiles_meeting(z, boxes)

    def count(self) -> int:
        """How many tiles `tiles()` visits (for a progress bar)."""
        return sum(1 for _ in self.tiles())


@dataclass
class ExportReport:
    """What went into an archive."""

    tiles: int = 0  # tiles written
    empty: int = 0  # tiles visited that hold nothing, left out as the server answers 204 for them
    size_bytes: int = 0
    min_zoom: int | None = None
    max_zoom: int | None = None


def zoom_range(text: str) -> tuple[int, int]:
    """`FIRST-LAST` (or one zoom) as zooms of the grid; InvalidParameter otherwise."""
    first, dash, last = text.partition("-")
    parts = [first.strip(), last.strip()] if dash else [first.strip()] * 2
    if not all(part.isascii() and part.isdigit() and len(part) <= 2 for part in parts):
        raise InvalidParameter(f"zooms are FIRST-LAST, e.g. 0-14, not {text[:40]!r}", parameter="zooms")
    low, high = int(parts[0]), int(parts[1])
    if low > high or high > MAX_ZOOM:
        raise InvalidParameter(f"zooms must run upwards within 0-{MAX_ZOOM}, not {text[:40]!r}", parameter="zooms")
    return low, high


def exportable(registry: Registry, names: Sequence[str], *, cap: int) -> list[Layer]:
    """The named layers, in order, each of them public: an archive on static hosting is readable by anyone."""
    layers = registry.resolve_many(names, Principal(subject="export", is_staff=True), cap=cap, parameter="layers")
    private = [layer.id for layer in layers if not layer.is_public]
    if private:
        raise Forbidden(
            f"only public layers can be exported for static hosting; not public: {', '.join(map(repr, private))}",
            parameter="layers",
        )
    return layers


def tile_id(tile: TileXYZ) -> int:
    """The tile's position in a PMTiles archive (zoom, then the Hilbert curve)."""
    return int(zxy_to_tileid(tile.z, tile.x, tile.y))


def _reach(layer: Layer, z: int) -> Bounds:
    """The layer's extent in grid metres, widened by the buffer a tile at zoom z draws beyond its edges."""
    assert layer.bbox is not None
    extent = lonlat_to_tile_bounds(DEFAULT_TMS, layer.bbox)
    world = bounds(TileXYZ(DEFAULT_TMS, z, 0, 0))
    margin = (world.xmax - world.xmin) * BUFFER / EXTENT
    return Bounds(extent.xmin - margin, extent.ymin - margin, extent.xmax + margin, extent.ymax + margin)


def _tiles_meeting(z: int, boxes: list[Bounds]) -> Iterator[TileXYZ]:
    """The tiles of zoom z that meet any of the boxes, in tile id order: a walk down from the whole world.

    A tile's four children are consecutive on the Hilbert curve of the next zoom, so visiting children in id order,
    depth first, yields the zoom's tiles in id order while holding no more than one path in memory.
    """

    def walk(tile: TileXYZ) -> Iterator[TileXYZ]:
        if not any(_meets(bounds(tile), box) for box in boxes):
            return
        if tile.z == z:
            yield tile
            return
        children = [TileXYZ(tile.tms, tile.z + 1, 2 * tile.x + dx, 2 * tile.y + dy) for dx in (0, 1) for dy in (0, 1)]
        for child in sorted(children, key=tile_id):
            yield from walk(child)

    yield from walk(TileXYZ(DEFAULT_TMS, 0, 0, 0))


def _meets(a: Bounds, b: Bounds) -> bool:
    return a.xmin <= b.xmax and b.xmin <= a.xmax and a.ymin <= b.ymax and b.ymin <= a.ymax


def archive_metadata(plan: ExportPlan, sources: TileSources, lang: str = "en") -> dict[str, Any]:
    """The archive's JSON metadata: TileJSON's description of the drawn layers, with their licences."""
    drawn = plan.drawn()
    doc = tileset_metadata(drawn, sources, lang)
    low, high = min(plan.zooms_of(layer)[0] for layer in drawn), max(plan.zooms_of(layer)[-1] for layer in drawn)
    doc.update(minzoom=low, maxzoom=high, type="overlay", format="pbf", generator=GENERATOR)
    doc["center"][2] = min(max(low, CENTER_ZOOM), high)
    for entry, layer in zip(doc["vector_layers"], drawn, strict=True):
        entry.update(minzoom=plan.zooms_of(layer)[0], maxzoom=plan.zooms_of(layer)[-1])
    doc["licenses"] = [{"layer": layer.id, "name": layer.license_name, "url": layer.license_url} for layer in drawn]
    doc["demo"] = any(layer.is_demo for layer in drawn)
    return doc


def _header(plan: ExportPlan, report: ExportReport) -> dict[str, Any]:
    """The header fields the writer does not fill in itself (it counts tiles and finds the zooms)."""
    west, south, east, north = bounds_of(plan.drawn())
    assert report.min_zoom is not None and report.max_zoom is not None
    return {
        "tile_type": TileType.MVT,
        "tile_compression": Compression.GZIP,  # stored as the server sends tiles to a client that accepts gzip
        "min_lon_e7": round(west * 1e7),
        "min_lat_e7": round(south * 1e7),
        "max_lon_e7": round(east * 1e7),
        "max_lat_e7": round(north * 1e7),
        "center_zoom": min(max(report.min_zoom, CENTER_ZOOM), report.max_zoom),
        "center_lon_e7": round((west + east) / 2 * 1e7),
        "center_lat_e7": round((south + north) / 2 * 1e7),
    }


async def _configure(conn: AsyncConnection[Any]) -> None:
    # A long export on the server's own machine must not slow the map requests it serves meanwhile.
    await lower_backend_priority(conn)


def export_pool(database_url: str, workers: int) -> AsyncConnectionPool:
    """A small pool for the export's tile queries, created closed."""
    return AsyncConnectionPool(
        database_url,
        open=False,
        min_size=1,
        max_size=workers,
        configure=_configure,
        # UTC as the server's connections: timestamps travel in tiles as text, so the session time zone is in the bytes.
        kwargs={"autocommit": True, "application_name": "geoserver-export", "options": "-c timezone=UTC"},
    )


async def _built(
    pool: AsyncConnectionPool, plan: ExportPlan, sources: TileSources, workers: int
) -> AsyncGenerator[tuple[TileXYZ, BuiltTile], None]:
    """Each tile of the plan as the server builds it, in the plan's order, `workers` queries at a time.

    At most twice that many tiles are in flight, so memory does not grow with the archive.
    """
    no_cache = TileCache(max_bytes=0)  # every tile is built once: nothing to keep
    pending: deque[tuple[TileXYZ, asyncio.Task[Any]]] = deque()
    try:
        for tile in plan.tiles():
            task = asyncio.create_task(get_tile(pool.connection, sources, no_cache, plan.layers, tile))
            pending.append((tile, task))
            if len(pending) >= 2 * workers:
                done, first = pending.popleft()
                yield done, (await first).tile
        while pending:
            done, first = pending.popleft()
            yield done, (await first).tile
    finally:
        for _, task in pending:
            task.cancel()
        await asyncio.gather(*(task for _, task in pending), return_exceptions=True)


async def _fill(
    writer: Writer,
    pool: AsyncConnectionPool,
    plan: ExportPlan,
    sources: TileSources,
    workers: int,
    progress: Callable[[int], None],
) -> ExportReport:
    report = ExportReport()
    # Closed on the way out whatever happens (a full disk, say): no tile query is left running behind us.
    async with contextlib.aclosing(_built(pool, plan, sources, workers)) as built_tiles:
        async for tile, built in built_tiles:
            if built.raw:
                writer.write_tile(tile_id(tile), built.gz)
                report.tiles += 1
                report.min_zoom = tile.z if report.min_zoom is None else report.min_zoom
                report.max_zoom = tile.z
            else:
                report.empty += 1
            progress(1)
    return report


async def write_archive(
    database_url: str,
    plan: ExportPlan,
    path: Path,
    *,
    workers: int = 2,
    lang: str = "en",
    progress: Callable[[int], None] = lambda done: None,
) -> ExportReport:
    """Build every tile of the plan and write the archive to `path`, whole or not at all."""
    scratch = _scratch_beside(path)
    sources = TileSources(plan.layers)
    try:
        async with export_pool(database_url, workers) as pool:
            with scratch.open("wb") as out:
                writer = Writer(out)
                try:
                    report = await _fill(writer, pool, plan, sources, workers, progress)
                    if not report.tiles:
                        raise InvalidParameter(
                            f"nothing to export: no tile of these layers holds anything at zooms "
                            f"{plan.first_zoom}-{plan.last_zoom}",
                            parameter="zooms",
                        )
                    writer.finalize(_header(plan, report), archive_metadata(plan, sources, lang))
                finally:
                    writer.tile_f.close()  # the writer's scratch file, which only a finished archive closes
        os.replace(scratch, path)
    except BaseException:
        with contextlib.suppress(OSError):
            scratch.unlink()
        raise
    report.size_bytes = path.stat().st_size
    return report


def _scratch_beside(path: Path) -> Path:
    """Where the archive is written until it is complete: in the destination's folder, so the rename is atomic."""
    if not path.parent.is_dir():
        raise InvalidParameter(f"no folder {str(path.parent)!r} to write {path.name!r} in", parameter="out")
    if path.is_dir():
        raise InvalidParameter(f"{str(path)!r} is a folder; name a file", parameter="out")
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


def write_style(plan: ExportPlan, path: Path, archive_url: str, lang: str = "en") -> None:
    """A MapLibre style drawing the archive's layers from `pmtiles://<archive_url>`, written whole."""
    doc = archive_style(plan.drawn(), TileSources(plan.layers), archive_url, lang)
    scratch = _scratch_beside(path)
    try:
        scratch.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(scratch, path)
    except BaseException:
        with contextlib.suppress(OSError):
            scratch.unlink()
        raise
