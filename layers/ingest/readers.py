"""Reading a file into a GeoDataFrame, safely: an allow-list of formats, checked before GDAL opens anything.

Only a file the server itself holds is opened: never a URL, never a GDAL virtual path, never a VRT.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import geopandas as gpd
import pandas as pd
import pyogrio
from shapely import points

from layers.errors import IngestError

# Extension -> (GDAL driver that must open it, the first bytes it must start with)
FORMATS: dict[str, tuple[str, tuple[bytes, ...]]] = {
    ".geojson": ("GeoJSON", (b"{",)),
    ".json": ("GeoJSON", (b"{",)),
    ".gpkg": ("GPKG", (b"SQLite format 3\x00",)),
    ".kml": ("LIBKML", (b"<",)),
    ".zip": ("ESRI Shapefile", (b"PK\x03\x04",)),
    ".csv": ("CSV", ()),
}
KML_DRIVERS = {"LIBKML", "KML"}
MAX_ZIP_ENTRIES = 64
MAX_ZIP_BYTES = 4 * 1024**3
LON_NAMES = ("lon", "lng", "long", "longitude", "x")
LAT_NAMES = ("lat", "latitude", "y")


def _sniff(path: Path, prefixes: tuple[bytes, ...]) -> None:
    if not prefixes:
        return
    with open(path, "rb") as handle:
        head = handle.read(64)
    head = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not any(head.startswith(prefix) for prefix in prefixes):
        raise IngestError(f"{path.name} does not look like a {path.suffix.lstrip('.')} file")


def _check_path(path: Path) -> Path:
    text = str(path)
    if text.startswith(("/vsi", "http:", "https:", "ftp:", "PG:")) or "://" in text:
        raise IngestError("only a local file can be loaded")
    if not path.is_file():
        raise IngestError(f"{path.name}: no such file")
    return path


@contextmanager
def _unzipped_shapefile(path: Path) -> Iterator[Path]:
    """Extract a zipped Shapefile into a private temporary folder, refusing anything odd about the archive."""
    with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory(prefix="geoserver-zip-") as tmp:
        entries = [e for e in archive.infolist() if not e.is_dir()]
        if len(entries) > MAX_ZIP_ENTRIES:
            raise IngestError(f"{path.name} holds more than {MAX_ZIP_ENTRIES} files")
        if sum(e.file_size for e in entries) > MAX_ZIP_BYTES:
            raise IngestError(f"{path.name} unpacks to more than {MAX_ZIP_BYTES // 1024**3} GiB")
        wanted: dict[str, zipfile.ZipInfo] = {}
        for entry in entries:
            name = PurePosixPath(entry.filename)
            if name.is_absolute() or ".." in name.parts or entry.external_attr >> 28 == 0o12:
                raise IngestError(f"{path.name} holds an entry with an unsafe path")
            if name.name.startswith(".") or "__MACOSX" in name.parts:
                continue
            wanted[name.name.lower()] = entry
        shps = [n for n in wanted if n.endswith(".shp")]
        if len(shps) != 1:
            raise IngestError(f"{path.name} must hold exactly one .shp file (found {len(shps)})")
        stem = shps[0][:-4]
        for ext in (".shx", ".dbf"):
            if stem + ext not in wanted:
                raise IngestError(f"{path.name}: the Shapefile has no {ext} file; zip the .shp with its .shx and .dbf")
        out = Path(tmp)
        for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
            part = wanted.get(stem + ext)
            if part is not None:
                # Written under a fixed name: nothing from the archive decides where a file lands.
                (out / f"layer{ext}").write_bytes(archive.read(part))
        yield out / "layer.shp"


def _read_csv(path: Path, crs: str | None) -> gpd.GeoDataFrame:
    frame = pd.read_csv(path)
    lower = {c.lower(): c for c in frame.columns}
    lon = next((lower[n] for n in LON_NAMES if n in lower), None)
    lat = next((lower[n] for n in LAT_NAMES if n in lower), None)
    if lon is None or lat is None:
        raise IngestError(f"{path.name}: a CSV needs longitude and latitude columns (lon/lat or x/y)")
    xs = pd.to_numeric(frame[lon], errors="coerce")
    ys = pd.to_numeric(frame[lat], errors="coerce")
    if xs.isna().any() or ys.isna().any():
        raise IngestError(f"{path.name}: some rows have no numeric {lon}/{lat}")
    if crs is None and lon.lower() != "x":
        crs = "EPSG:4326"  # columns named lon/lat hold longitude and latitude by definition
    geometry = points(xs.to_numpy(), ys.to_numpy())
    return gpd.GeoDataFrame(frame.drop(columns=[lon, lat]), geometry=geometry, crs=crs)


def read_file(path: Path, *, layer: str | None = None, crs: str | None = None) -> gpd.GeoDataFrame:
    """Read a GeoJSON, GeoPackage, KML, zipped Shapefile or CSV file; `crs` applies when the file has none."""
    path = _check_path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise IngestError(f"{path.name}: unsupported format; use one of {', '.join(sorted(FORMATS))}")
    driver, prefixes = FORMATS[suffix]
    _sniff(path, prefixes)
    try:
        if suffix == ".csv":
            frame = _read_csv(path, crs)
        elif suffix == ".zip":
            with _unzipped_shapefile(path) as shp:
                frame = _read_with_gdal(shp, driver, layer)
        else:
            frame = _read_with_gdal(path, driver, layer)
    except IngestError:
        raise
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, ValueError, UnicodeError) as exc:
        raise IngestError(f"{path.name} cannot be read as {driver}: {str(exc).splitlines()[0][:200]}") from exc
    if frame.crs is None:
        if crs is None:
            raise IngestError(
                f"{path.name} has no coordinate reference system; give one with --crs "
                "(for example --crs EPSG:3776 for the City's 3TM survey grid)"
            )
        try:
            frame = frame.set_crs(crs)
        except Exception as exc:  # pyproj raises several types for a bad CRS string
            raise IngestError(f"{crs!r} is not a coordinate reference system; give an EPSG code") from exc
    return frame


def _read_with_gdal(path: Path, driver: str, layer: str | None) -> gpd.GeoDataFrame:
    info = pyogrio.read_info(path, layer=layer)
    found = info.get("driver")
    if found != driver and not (driver in KML_DRIVERS and found in KML_DRIVERS):
        raise IngestError(f"{path.name} is a {found} file, not {driver}")
    return pyogrio.read_dataframe(path, layer=layer)
