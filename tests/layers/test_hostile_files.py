"""Files built to harm the server are refused before GDAL opens them, with a message that says what to do.

Cases: a path or URL instead of a file, a file that is not what its name says (a VRT above all), KML with entities,
includes or network links, zips with unsafe paths, links, bombs, nested archives, several or partial Shapefiles.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from layers.errors import IngestError
from layers.ingest.readers import MAX_ZIP_ENTRIES, read_file
from tests.support.files import garden_plots, zip_bomb, zip_of, zipped_shapefile

VRT = (
    b'<OGRVRTDataSource><OGRVRTLayer name="x"><SrcDataSource>/etc/passwd</SrcDataSource></OGRVRTLayer>'
    b"</OGRVRTDataSource>"
)
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<kml xmlns="http://www.opengis.net/kml/2.2"><Document><Placemark><name>&lol2;</name>
<Point><coordinates>-114.07,51.04</coordinates></Point></Placemark></Document></kml>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?><!DOCTYPE kml [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<kml xmlns="http://www.opengis.net/kml/2.2"><Document><Placemark><name>&x;</name>
<Point><coordinates>-114.07,51.04</coordinates></Point></Placemark></Document></kml>"""
NETWORK_LINK = b"""<?xml version="1.0"?><kml xmlns="http://www.opengis.net/kml/2.2"><Document>
<NetworkLink><Link><href>http://169.254.169.254/latest/meta-data</href></Link></NetworkLink></Document></kml>"""


@pytest.mark.parametrize(
    "name", ["/vsicurl/http://169.254.169.254/x.geojson", "/vsizip//etc/passwd.zip", "http://example.invalid/a.kml"]
)
def test_a_path_or_url_is_never_opened(name: str) -> None:
    with pytest.raises(IngestError, match="only a local file"):
        read_file(Path(name))


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("x.geojson", VRT, "does not look like a geojson"),
        ("x.kml", VRT, "not a KML document"),
        ("x.gpkg", b"<html>not a database</html>", "does not look like a gpkg"),
        ("x.kml", b'{"type": "FeatureCollection", "features": []}', "does not look like a kml"),
        ("x.kml", BILLION_LAUGHS, "DOCTYPE, entities"),
        ("x.kml", EXTERNAL_ENTITY, "DOCTYPE, entities"),
        ("x.kml", NETWORK_LINK, "network links"),
        ("x.shp", b"\x00\x00\x27\x0a", "unsupported format"),
        ("x.vrt", VRT, "unsupported format"),
    ],
)
def test_a_file_that_is_not_what_its_name_says_is_refused(tmp_path: Path, name: str, content: bytes, says: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(IngestError, match=says):
        read_file(path)


def _shapefile_bytes(tmp_path: Path) -> dict[str, bytes]:
    archive = zipped_shapefile(tmp_path / "plots.zip", garden_plots())
    import zipfile

    with zipfile.ZipFile(archive) as z:
        return {name: z.read(name) for name in z.namelist()}


@pytest.mark.parametrize(
    ("entries", "says"),
    [
        ({"../evil.shp": b"x"}, "unsafe path"),
        ({"/etc/evil.shp": b"x"}, "unsafe path"),
        ({"C:\\evil.shp": b"x"}, "unsafe path"),
        ({"inner.zip": b"PK\x03\x04"}, "another archive"),
        ({f"f{i}.txt": b"x" for i in range(MAX_ZIP_ENTRIES + 1)}, f"more than {MAX_ZIP_ENTRIES} files"),
        ({"a.shp": b"x", "b.shp": b"x"}, "exactly one .shp"),
        ({"readme.txt": b"x"}, "exactly one .shp"),
    ],
)
def test_unsafe_zips_are_refused_before_anything_is_extracted(
    tmp_path: Path, entries: dict[str, bytes], says: str
) -> None:
    with pytest.raises(IngestError, match=says):
        read_file(zip_of(tmp_path / "bad.zip", entries))


def test_a_link_inside_a_zip_is_refused(tmp_path: Path) -> None:
    parts = _shapefile_bytes(tmp_path)
    with pytest.raises(IngestError, match="link"):
        read_file(zip_of(tmp_path / "link.zip", parts, symlink="plots.prj.lnk"))


def test_a_zip_bomb_is_refused_by_its_ratio_and_by_what_really_unpacks(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="times larger"):
        read_file(zip_bomb(tmp_path / "bomb.zip", unpacked_mb=64))
    with pytest.raises(IngestError, match="unpacks to more than"):
        read_file(zip_bomb(tmp_path / "small-bomb.zip", unpacked_mb=2), max_unzipped_bytes=1024 * 1024)


@pytest.mark.parametrize(
    ("missing", "says"), [(".shx", "no .shx file"), (".dbf", "no .dbf file"), (".prj", "EPSG code")]
)
def test_a_partial_shapefile_gets_a_message_that_says_what_to_add(tmp_path: Path, missing: str, says: str) -> None:
    archive = zipped_shapefile(tmp_path / "partial.zip", garden_plots(), leave_out=(missing,))
    with pytest.raises(IngestError, match=says):
        read_file(archive)
    assert len(read_file(archive, crs="EPSG:3776")) == 6 if missing == ".prj" else True


def test_a_shp_that_is_not_a_shapefile_is_refused(tmp_path: Path) -> None:
    parts = _shapefile_bytes(tmp_path)
    shp = next(name for name in parts if name.endswith(".shp"))
    parts[shp] = VRT
    with pytest.raises(IngestError, match="is not a Shapefile"):
        read_file(zip_of(tmp_path / "fake.zip", parts))
