"""`geoserver export pmtiles` as an operator runs it: an archive and its style, or a clear refusal and no file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pmtiles.reader import MmapSource, Reader
from pmtiles.tile import Compression

from layers.ingest.load import load_file
from tests.support.cli import geoserver
from tests.support.layers import drop_layer, manifest, point, write_geojson

PRIVATE = "Export's private overlay"


@pytest.fixture(scope="module")
def private_layer(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A community group's layer, seen by its members only."""
    secret = [({"name": "secret"}, point(-114.07, 51.04))]
    path = write_geojson(tmp_path_factory.mktemp("private") / "p.geojson", secret)
    load_file(database_url, manifest(PRIVATE, ["name"], visibility="group:export-testers"), path)
    yield PRIVATE
    drop_layer(database_url, PRIVATE)


def test_an_archive_and_a_style_that_reads_it(database_url: str, demo_city: dict[str, str], tmp_path: Path) -> None:
    out, style = tmp_path / "city.pmtiles", tmp_path / "city.style.json"
    done = geoserver(
        database_url, "export", "pmtiles", "wards,roads", "--zooms", "8-12", str(out), "--style", str(style),
        "--url", "tiles/city.pmtiles",
    )  # fmt: skip
    assert "tiles z8-12" in done.stderr and "tiles at zooms 8-12" in done.stderr, done.stderr
    with out.open("rb") as f:
        reader = Reader(MmapSource(f))
        header, metadata = reader.header(), reader.metadata()
    assert header["tile_compression"] == Compression.GZIP and (header["min_zoom"], header["max_zoom"]) == (8, 12)
    assert [layer["id"] for layer in metadata["vector_layers"]] == ["wards", "roads"]
    doc = json.loads(style.read_text(encoding="utf-8"))
    assert doc["version"] == 8 and doc["sources"] == {"city": {"type": "vector", "url": "pmtiles://tiles/city.pmtiles"}}
    assert {layer["source-layer"] for layer in doc["layers"] if "source-layer" in layer} == {"wards", "roads"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["city.pmtiles", "city.style.json"]


@pytest.mark.parametrize(
    ("layers", "zooms", "says"),
    [
        ("wards,no-such-layer", "0-14", "no layer named 'no-such-layer'"),
        (f"wards,{PRIVATE}", "0-14", "only public layers can be exported"),
        ("wards", "14-0", "zooms must run upwards"),
        ("wards", "0-30", "zooms must run upwards within 0-24"),
        ("wards", "all", "zooms are FIRST-LAST"),
        ("wards,", "0-14", "empty name"),
        ("streetlights", "0-5", "nothing to export"),  # refused after writing began: the scratch file goes too
    ],
)
def test_bad_input_is_refused_clearly_and_leaves_no_file(
    database_url: str, demo_city: dict[str, str], private_layer: str, tmp_path: Path, layers: str, zooms: str, says: str
) -> None:
    out, style = tmp_path / "city.pmtiles", tmp_path / "city.style.json"
    done = geoserver(
        database_url, "export", "pmtiles", layers, "--zooms", zooms, str(out), "--style", str(style), ok=False
    )
    assert done.returncode == 1 and says in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_failed_export_leaves_the_previous_archive_as_it_was(
    database_url: str, demo_city: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "city.pmtiles"
    out.write_bytes(b"yesterday's archive")
    geoserver(database_url, "export", "pmtiles", "streetlights", "--zooms", "0-5", str(out), ok=False)
    assert out.read_bytes() == b"yesterday's archive" and list(tmp_path.iterdir()) == [out]
    missing = tmp_path / "no such folder" / "city.pmtiles"
    assert "no folder" in geoserver(database_url, "export", "pmtiles", "wards", str(missing), ok=False).stderr
