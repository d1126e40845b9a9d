"""Tiles of a table published in place (longitude/latitude only, no typmod) match those of the same data ingested.

The in-place plans test the tile's box in degrees, the size floor in degrees, map rows with the tile's affine map
(or ST_Transform where that is not precise enough) and cluster with Mercator's formula: the tiles must carry the
same features at the same tile coordinates (within one unit) as the plans on a stored EPSG:3857 column.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import mapbox_vector_tile
import morecantile
import psycopg
import pytest

from layers.catalogue.records import Layer
from layers.catalogue.visibility import ANONYMOUS
from layers.ingest.in_place import publish_table
from layers.ingest.load import load_file
from tests.support.layers import drop_layer, fresh_registry, manifest, point, write_geojson
from tiles.grids import TileXYZ, bounds
from tiles.lonlat import latitude, longitude
from tiles.mvt import CLUSTER_COUNT
from tiles.source import LayerTileSource

WMQ = morecantile.tms.get("WebMercatorQuad")
CORNER = (-114.10, 51.02)


def _square(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    # Every fifth square is about 10 m wide, below a pixel at zoom 12 (38 m); the others about 100 m.
    x, y = CORNER[0] + (i % 20) * 0.002, CORNER[1] + (i // 20) * 0.0015
    side = 0.00014 if i % 5 == 0 else 0.0014
    ring = [[x, y], [x + side, y], [x + side, y + side * 0.65], [x, y + side * 0.65], [x, y]]
    return {"code": i, "name": f"parcel {i}"}, {"type": "Polygon", "coordinates": [ring]}


def _both(database_url: str, tmp_path: Path, name: str, features: list[Any]) -> tuple[Layer, Layer]:
    """The same features ingested (stored 3857 column) and in a bare-geometry table published in place."""
    load_file(database_url, manifest(f"{name} managed", ["code", "name"], id_field="code"), write_geojson(
        tmp_path / f"{name}.geojson", features
    ))  # fmt: skip
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS public.{name}_copy")
        conn.execute(
            f'CREATE TABLE public.{name}_copy AS SELECT code, name, geom FROM layer_data."{name} managed"'  # noqa: S608
        )
        conn.execute(f"CREATE INDEX ON public.{name}_copy USING gist (geom)")
    in_place = manifest(f"{name} in place", ["code", "name"], id_field="code", source={"table": f"public.{name}_copy"})
    publish_table(database_url, in_place)
    registry = fresh_registry(database_url)
    return registry.resolve(f"{name} managed", ANONYMOUS), registry.resolve(f"{name} in place", ANONYMOUS)


def _decode(database_url: str, layer: Layer, tile: TileXYZ) -> list[dict[str, Any]]:
    async def run() -> bytes:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            return await LayerTileSource(layer).build(conn, tile)

    raw = asyncio.run(run())
    decoded = mapbox_vector_tile.decode(raw, default_options={"y_coord_down": True}) if raw else {}
    return list(decoded[layer.id]["features"]) if decoded else []


def _vertices(feature: dict[str, Any]) -> list[tuple[int, int]]:
    coordinates = feature["geometry"]["coordinates"]
    if feature["geometry"]["type"] == "Point":
        return [tuple(coordinates)]
    return [tuple(v) for ring in coordinates for v in ring]


def _tile(z: int) -> TileXYZ:
    t = WMQ.tile(CORNER[0] + 0.02, CORNER[1] + 0.011, z)
    return TileXYZ("WebMercatorQuad", z, t.x, t.y)


@pytest.fixture(scope="module")
def parcels(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    managed, in_place = _both(
        database_url, tmp_path_factory.mktemp("tiles"), "squares", [_square(i) for i in range(200)]
    )
    yield managed, in_place
    drop_layer(database_url, "squares managed")
    drop_layer(database_url, "squares in place", "public.squares_copy")


@pytest.mark.parametrize("z", [10, 12, 13, 14])
def test_polygons_in_place_match_the_ingested_layer(database_url: str, parcels: Any, z: int) -> None:
    managed, in_place = parcels
    source = LayerTileSource(in_place)
    # Affine from zoom 12 on at Calgary's latitude; below it, ST_Transform on each row.
    assert source.plan_for(z).endswith("affine") == (z >= 12) and LayerTileSource(managed).affine_zooms == set()
    ours = {f["id"]: _vertices(f) for f in _decode(database_url, in_place, _tile(z))}
    theirs = {f["id"]: _vertices(f) for f in _decode(database_url, managed, _tile(z))}
    assert set(ours) == set(theirs) and len(ours) > 10
    if z == 12:  # the size floor, here in degrees, drops the 10 m squares and keeps the 100 m ones, as in metres
        assert not any(code % 5 == 0 for code in ours)
    if z == 14:  # and from DETAIL_ZOOM on, every feature is drawn
        assert any(code % 5 == 0 for code in ours)
    for code, vertices in theirs.items():
        assert len(ours[code]) == len(vertices)
        assert all(abs(a - c) <= 1 and abs(b - d) <= 1 for (a, b), (c, d) in zip(ours[code], vertices, strict=True))


def test_clusters_in_place_count_exactly_what_the_ingested_layer_counts(database_url: str, tmp_path: Path) -> None:
    features = [({"code": i, "name": "p"}, point(-114.10 + (i % 100) * 0.0005, 51.02 + (i // 100) * 0.0005))
                for i in range(6000)]  # fmt: skip
    managed, in_place = _both(database_url, tmp_path, "dots", features)
    tile = _tile(8)
    assert 8 in LayerTileSource(in_place).cluster_zooms
    ours, theirs = ({_vertices(f)[0]: f["properties"][CLUSTER_COUNT] for f in _decode(database_url, layer, tile)}
                    for layer in (in_place, managed))  # fmt: skip
    assert ours == theirs and sum(ours.values()) == 6000
    drop_layer(database_url, "dots managed")
    drop_layer(database_url, "dots in place", "public.dots_copy")


def test_points_on_tile_edges_are_counted_once_by_the_clusters(database_url: str) -> None:
    """Points exactly on the edges and corners between 36 clustered tiles (and points inside them): summed over the
    tiles, every point is counted once, whichever tile's numbers placed it."""
    z, first = 14, WMQ.tile(-114.10, 51.05, 14)
    columns, rows = range(first.x, first.x + 6), range(first.y, first.y + 6)
    box = bounds(TileXYZ("WebMercatorQuad", z, first.x, first.y))
    west, north, size = box.xmin, box.ymax, box.xmax - box.xmin
    # The edges as each tile's own bounds give them, which is what its index test and its cells are computed from.
    edges_x = [longitude(bounds(TileXYZ("WebMercatorQuad", z, x, first.y)).xmin) for x in columns[1:]]
    edges_y = [latitude(bounds(TileXYZ("WebMercatorQuad", z, first.x, y)).ymax) for y in rows[1:]]
    inner_x = [longitude(west + (i + 0.37) * size) for i in range(6)]
    inner_y = [latitude(north - (j + 0.61) * size) for j in range(6)]
    spots = [(x, y) for x in edges_x + inner_x for y in edges_y + inner_y]
    lons = [x for x, _ in spots] + [inner_x[0] + k * 1e-7 for k in range(40_000)]  # a dense tile: clusters at z14
    lats = [y for _, y in spots] + [inner_y[0]] * 40_000
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS public.edge_dots")
        conn.execute(
            "CREATE TABLE public.edge_dots AS SELECT row_number() OVER () AS id, "
            "ST_SetSRID(ST_MakePoint(x, y), 4326) AS geom FROM unnest(%s::float8[], %s::float8[]) AS u(x, y)",
            [lons, lats],
        )
    publish_table(database_url, manifest("edge dots", ["id"], id_field="id", source={"table": "public.edge_dots"}))
    try:
        layer = fresh_registry(database_url).resolve("edge dots", ANONYMOUS)
        assert z in LayerTileSource(layer).cluster_zooms
        counted = sum(
            f["properties"][CLUSTER_COUNT]
            for x in columns
            for y in rows
            for f in _decode(database_url, layer, TileXYZ("WebMercatorQuad", z, x, y))
        )
        assert counted == len(lons) == len(spots) + 40_000
    finally:
        drop_layer(database_url, "edge dots", "public.edge_dots")
