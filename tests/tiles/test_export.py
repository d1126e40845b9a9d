"""The PMTiles export holds exactly the tiles the server serves: read back with the `pmtiles` package, compared with
the app's own answers to `GET /tiles/{layers}/{z}/{x}/{y}.pbf`.

Inside one MVT layer, features come in the order the database returned the rows, which can change with the query plan
(a connection's first run of a prepared statement, or its generic plan later): two builds of one tile by the server
itself can differ in that order. So tiles are compared as the same layers holding the same features (id, geometry,
properties), and byte for byte whenever the rows came back in the same order.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient
from pmtiles.reader import MmapSource, Reader, all_tiles
from pmtiles.tile import Compression, TileType

from layers.errors import Forbidden, InvalidParameter, LayerNotFound
from layers.ingest.load import load_file
from tests.support.layers import drop_layer, fresh_registry, manifest, write_geojson
from tiles.cache import BuiltTile
from tiles.export import ExportPlan, ExportReport, exportable, tile_id, write_archive, zoom_range
from tiles.grids import TileXYZ

HOSTILE = 'Bow "River" Paths'  # a public layer whose id has quotes, a space and capitals
PRIVATE = "export private overlay"
SAMPLE = 500


@pytest.fixture(scope="module")
def test_layers(database_url: str, client: TestClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A public layer with a hostile id (paths downtown, from zoom 6) and a group's private layer."""
    tmp = tmp_path_factory.mktemp("export-layers")
    paths = [
        ({"name": f"path {i}"}, {"type": "LineString", "coordinates": [[-114.09 + i / 200, 51.03], [-114.05, 51.05]]})
        for i in range(8)
    ]
    load_file(database_url, manifest(HOSTILE, ["name"], min_zoom=6), write_geojson(tmp / "paths.geojson", paths))
    private = [({"name": "secret"}, {"type": "Point", "coordinates": [-114.07, 51.04]})]
    load_file(
        database_url,
        manifest(PRIVATE, ["name"], visibility="group:exporters"),
        write_geojson(tmp / "private.geojson", private),
    )
    deadline = time.monotonic() + 10
    while client.get(f"/tiles/{quote(HOSTILE, safe='')}.json").status_code != 200:
        assert time.monotonic() < deadline, "the app never saw the new layer"
        time.sleep(0.05)
    yield
    drop_layer(database_url, HOSTILE)
    drop_layer(database_url, PRIVATE)


def _export(database_url: str, names: list[str], zooms: str, path: Path) -> tuple[ExportPlan, ExportReport]:
    layers = exportable(fresh_registry(database_url), names, cap=16)
    plan = ExportPlan(tuple(layers), *zoom_range(zooms))
    return plan, asyncio.run(write_archive(database_url, plan, path, workers=2))


@pytest.fixture(scope="module")
def archives(
    database_url: str, demo_city: dict[str, str], test_layers: None, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[list[str], ExportPlan, ExportReport, Path]]:
    """A composite of every demo layer and the hostile one at zooms 0-14, and one layer alone at 8-14."""
    tmp = tmp_path_factory.mktemp("archives")
    made = {}
    for key, names, zooms in (("composite", [*demo_city, HOSTILE], "0-14"), ("single", ["facilities"], "8-14")):
        plan, report = _export(database_url, names, zooms, tmp / f"{key}.pmtiles")
        made[key] = (names, plan, report, tmp / f"{key}.pmtiles")
    return made


def _served(client: TestClient, names: list[str], tile: TileXYZ) -> tuple[int, bytes, str | None]:
    """The app's answer to a browser asking for the tile: status, body exactly as sent, its content coding."""
    path = f"/tiles/{','.join(quote(name, safe='') for name in names)}/{tile.z}/{tile.x}/{tile.y}.pbf"
    with client.stream("GET", path, headers={"Accept-Encoding": "gzip"}) as response:
        return response.status_code, b"".join(response.iter_raw()), response.headers.get("content-encoding")


def _features(mvt: bytes) -> dict[str, Any]:
    """A tile's layers, each with its extent and its features in a canonical order."""
    return {
        name: (layer["extent"], sorted(json.dumps(f, sort_keys=True) for f in layer["features"]))
        for name, layer in mapbox_vector_tile.decode(mvt).items()
    }


def _spread(tiles: list[TileXYZ], n: int, rng: random.Random) -> list[TileXYZ]:
    """n tiles drawn evenly across zooms (every tile of a zoom with few), then at random from the rest."""
    by_zoom: dict[int, list[TileXYZ]] = {}
    for tile in tiles:
        by_zoom.setdefault(tile.z, []).append(tile)
    share = n // len(by_zoom)
    chosen = [t for group in by_zoom.values() for t in (group if len(group) <= share else rng.sample(group, share))]
    rest = sorted(set(tiles) - set(chosen))
    return chosen + rng.sample(rest, n - len(chosen))


@contextlib.contextmanager
def _reader(path: Path) -> Iterator[Reader]:
    with path.open("rb") as f:
        yield Reader(MmapSource(f))


def test_the_archive_holds_the_served_tiles_for_a_sample_of_500(client: TestClient, archives: dict[str, Any]) -> None:
    rng = random.Random(15)
    drawn: set[str] = set()
    written = identical = 0
    for key, share in (("composite", 400), ("single", SAMPLE - 400)):
        names, plan, _, path = archives[key]
        sample = _spread(list(plan.tiles()), share, rng)
        assert len(set(sample)) == share and len({t.z for t in sample}) >= 7
        with _reader(path) as reader:
            for tile in sample:
                status, body, coding = _served(client, names, tile)
                stored = reader.get(tile.z, tile.x, tile.y)
                if status == 204:
                    assert stored is None, tile
                    continue
                assert (status, coding) == (200, "gzip") and stored is not None, tile
                raw, served_raw = gzip.decompress(stored), gzip.decompress(body)
                assert stored == BuiltTile.of(raw).gz, tile  # compressed as the server does
                identical += stored == body
                tile_layers = _features(raw)
                assert tile_layers == _features(served_raw), tile
                drawn |= set(tile_layers)
                written += 1
    assert written >= 300 and identical >= written // 2
    assert {HOSTILE, "wards", "roads", "parcels", "facilities", "streetlights"} <= drawn


def test_every_archived_tile_was_planned_and_none_beyond_the_extent_is_lost(
    client: TestClient, archives: dict[str, Any]
) -> None:
    names, plan, report, path = archives["composite"]
    planned = list(plan.tiles())
    assert [tile_id(t) for t in planned] == sorted({tile_id(t) for t in planned})  # the archive's order, no repeats
    with _reader(path) as reader:
        stored = [TileXYZ("WebMercatorQuad", *zxy) for zxy, _ in all_tiles(reader.get_bytes)]
    assert len(stored) == report.tiles > 0 and set(stored) <= set(planned)
    assert report.tiles + report.empty == len(planned)
    # Tiles just outside the plan: the server has nothing there either (the plan widens extents by the tile buffer).
    inside = set(planned)
    ring = sorted(
        {TileXYZ(t.tms, t.z, t.x + dx, t.y + dy) for t in planned if t.z >= 6 for dx in (-1, 0, 1) for dy in (-1, 0, 1)}
        - inside
    )
    assert len(ring) > 50
    for tile in random.Random(14).sample(ring, 50):
        assert _served(client, names, tile)[0] == 204, tile


def test_header_and_metadata_describe_the_archive_as_the_server_describes_its_tiles(
    client: TestClient, archives: dict[str, Any]
) -> None:
    names, plan, report, path = archives["composite"]
    with _reader(path) as reader:
        header, metadata = reader.header(), reader.metadata()
    assert header["tile_type"] == TileType.MVT and header["tile_compression"] == Compression.GZIP
    assert header["clustered"] and (header["min_zoom"], header["max_zoom"]) == (report.min_zoom, report.max_zoom)
    served = client.get(f"/tiles/{','.join(quote(n, safe='') for n in names)}.json").json()
    assert metadata["attribution"] == served["attribution"] and metadata["bounds"] == served["bounds"]
    assert [v["id"] for v in metadata["vector_layers"]] == [v["id"] for v in served["vector_layers"]] == names
    for ours, theirs in zip(metadata["vector_layers"], served["vector_layers"], strict=True):
        assert ours["fields"] == theirs["fields"]
        assert (ours["minzoom"], ours["maxzoom"]) == (max(theirs["minzoom"], 0), min(theirs["maxzoom"], 14))
    assert {entry["layer"] for entry in metadata["licenses"]} == set(names)
    assert all(entry["name"] for entry in metadata["licenses"])
    assert metadata["demo"] is True and "(demo data)" in metadata["name"]
    west, south, east, north = (header[k] / 1e7 for k in ("min_lon_e7", "min_lat_e7", "max_lon_e7", "max_lat_e7"))
    assert west < -114.07 < east and south < 51.04 < north


@pytest.mark.parametrize(("text", "zooms"), [("0-14", (0, 14)), ("12", (12, 12)), (" 3 - 5 ", (3, 5))])
def test_zoom_ranges(text: str, zooms: tuple[int, int]) -> None:
    assert zoom_range(text) == zooms


@pytest.mark.parametrize("text", ["14-0", "0-25", "a-b", "-3", "0-", "1.5-2", "", "0-14-15", "٣-٤"])
def test_bad_zoom_ranges_are_refused(text: str) -> None:
    with pytest.raises(InvalidParameter, match="zoom"):
        zoom_range(text)


def test_only_public_layers_can_be_exported(database_url: str, test_layers: None) -> None:
    registry = fresh_registry(database_url)
    with pytest.raises(Forbidden, match="only public layers"):
        exportable(registry, ["wards", PRIVATE], cap=16)
    with pytest.raises(LayerNotFound):
        exportable(registry, ["wards", "no such layer"], cap=16)
    assert [layer.id for layer in exportable(registry, [HOSTILE, "wards", HOSTILE], cap=16)] == [HOSTILE, "wards"]
