"""MVT queries against a real PostGIS: layer names, public attributes, positions, clusters, bad geometries."""

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
from layers.ingest.load import load_file
from tests.support.layers import fresh_registry, manifest, point, write_geojson
from tiles.grids import TileXYZ, bounds
from tiles.mvt import CLUSTER_COUNT, EXTENT
from tiles.source import LayerTileSource

WMQ = morecantile.tms.get("WebMercatorQuad")


def _tile_at(lon: float, lat: float, z: int) -> TileXYZ:
    t = WMQ.tile(lon, lat, z)
    return TileXYZ("WebMercatorQuad", z, t.x, t.y)


def _build(url: str, layer: Layer, tile: TileXYZ) -> dict[str, Any]:
    async def run() -> bytes:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            return await LayerTileSource(layer).build(conn, tile)

    raw = asyncio.run(run())
    return mapbox_vector_tile.decode(raw, default_options={"y_coord_down": True}) if raw else {}


@pytest.fixture(scope="module")
def seeded(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Layer:
    """A layer with one known point and private columns."""
    tmp = tmp_path_factory.mktemp("mvt")
    features = [
        ({"code": 7, "name": "seed", "50% off": "yes", "secret": "CANARY-mvt"}, point(-114.0719, 51.0447)),
        ({"code": 8, "name": "other", "50% off": "no", "secret": "CANARY-mvt"}, point(-114.2, 51.1)),
    ]
    load_file(
        database_url,
        manifest("mvt seeded", ["code", "name", "50% off"], id_field="code"),
        write_geojson(tmp / "s.geojson", features),
    )
    return fresh_registry(database_url).resolve("mvt seeded", ANONYMOUS)


def test_a_seeded_feature_lands_at_its_tile_coordinates(database_url: str, seeded: Layer) -> None:
    lon, lat = -114.0719, 51.0447
    for z in (10, 14, 18):
        tile = _tile_at(lon, lat, z)
        decoded = _build(database_url, seeded, tile)
        assert list(decoded) == ["mvt seeded"]
        (feature,) = [f for f in decoded["mvt seeded"]["features"] if f["properties"]["name"] == "seed"]
        x_m, y_m = WMQ.xy(lon, lat)
        b = bounds(tile)
        expected_x = (x_m - b.xmin) / (b.xmax - b.xmin) * EXTENT
        expected_y = (b.ymax - y_m) / (b.ymax - b.ymin) * EXTENT
        gx, gy = feature["geometry"]["coordinates"]
        assert abs(gx - expected_x) <= 1 and abs(gy - expected_y) <= 1, (z, gx, gy, expected_x, expected_y)
        assert feature["id"] == 7


def test_only_public_fields_are_in_tiles(database_url: str, seeded: Layer) -> None:
    decoded = _build(database_url, seeded, _tile_at(-114.0719, 51.0447, 12))
    for feature in decoded["mvt seeded"]["features"]:
        # The integer id travels as the feature id, not as a property; a % in a name is no placeholder.
        assert set(feature["properties"]) == {"name", "50% off"} and feature["id"] in (7, 8)
        assert "CANARY" not in repr(feature)


def test_tiles_outside_the_zoom_range_are_empty(database_url: str, seeded: Layer) -> None:
    narrow = LayerTileSource(seeded)
    narrow.min_zoom, narrow.max_zoom = 12, 14

    async def run(z: int) -> bytes:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            return await narrow.build(conn, _tile_at(-114.0719, 51.0447, z))

    assert asyncio.run(run(11)) == b"" and asyncio.run(run(15)) == b"" and asyncio.run(run(13)) != b""


def test_dense_points_are_clustered_with_exact_counts(database_url: str, tmp_path: Path) -> None:
    features = [({"n": i}, point(-114.10 + (i % 100) * 0.0005, 51.02 + (i // 100) * 0.0005)) for i in range(6000)]
    load_file(database_url, manifest("dense", ["n"]), write_geojson(tmp_path / "dense.geojson", features))
    with psycopg.connect(database_url) as conn:
        layer = fresh_registry(database_url).resolve("dense", ANONYMOUS)
        source = LayerTileSource(layer)
        assert 8 in source.cluster_zooms and 18 not in source.cluster_zooms
        tile = _tile_at(-114.08, 51.035, 8)
        b = bounds(tile)
        inside = conn.execute(
            "SELECT count(*) FROM layer_data.dense WHERE geom_3857 && ST_MakeEnvelope(%s, %s, %s, %s, 3857)",
            [b.xmin, b.ymin, b.xmax, b.ymax],
        ).fetchone()
    decoded = _build(database_url, layer, tile)
    clusters = decoded["dense"]["features"]
    assert sum(f["properties"][CLUSTER_COUNT] for f in clusters) == inside[0] == 6000  # type: ignore[index]
    assert len(clusters) < 100  # a few cells, not 6000 points
    detailed = _build(database_url, layer, _tile_at(-114.08, 51.035, 18))
    assert all("n" in f["properties"] for f in detailed["dense"]["features"])


def test_one_invalid_geometry_never_breaks_a_tile(database_url: str, tmp_path: Path) -> None:
    x, y = -114.07, 51.04
    square = {"type": "Polygon", "coordinates": [[[x, y], [x + 0.01, y], [x + 0.01, y + 0.01], [x, y + 0.01], [x, y]]]}
    load_file(
        database_url,
        manifest("with bowtie", ["name"]),
        write_geojson(tmp_path / "p.geojson", [({"name": "ok"}, square)]),
    )
    with psycopg.connect(database_url, autocommit=True) as conn:
        # Written behind the ingest's back, as a direct edit could: a self-intersecting ring.
        conn.execute(
            'INSERT INTO layer_data."with bowtie" (fid, name, geom) VALUES (2, %s, ST_GeomFromText(%s, 4326))',
            ["bowtie", f"POLYGON(({x} {y}, {x + 0.01} {y + 0.01}, {x + 0.01} {y}, {x} {y + 0.01}, {x} {y}))"],
        )
        layer = fresh_registry(database_url).resolve("with bowtie", ANONYMOUS)
    names = {
        f["properties"]["name"]
        for f in _build(database_url, layer, _tile_at(x + 0.005, y + 0.005, 14))["with bowtie"]["features"]
    }
    assert names == {"ok", "bowtie"}
