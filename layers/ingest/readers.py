"""Reading a file into a GeoDataFrame, safely: an allow-list of formats, checked before GDAL opens anything.

Only a file the server itself holds is opened: never a URL, never a GDAL virtual path, never a VRT. Each format must
be what its name says (first bytes, then the driver GDAL picks); KML with a DOCTYPE, entities or network links is
refused before any XML parser sees it; a zip is checked entry by entry before anything is extracted.
"""

from __future__ import annotations

import re
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import geopandas as gpd
import pandas as pd
import pyogrio
from shapely import points

from layers.errors import IngestError
from layers.ingest.crs_checks import check_crs_code, check_file_crs, check_geojson_crs

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
MAX_ZIP_RATIO = 100  # an entry unpacking to more than this many times its packed size is a bomb, not a Shapefile
ARCHIVES = (".zip", ".gz", ".tgz", ".tar", ".7z", ".rar", ".bz2", ".xz", ".kmz")
# Bytes in a KML that make an XML parser read other files, expand entities, or reach the network.
KML_REFUSED = (b"<!doctype", b"<!entity", b"<networklink", b"xinclude", b"<xi:include")
SCAN_BYTES = 1024 * 1024
KML_DRAWING = ("altitudeMode", "tessellate", "extrude", "visibility", "drawOrder", "icon")
KML_OPTIONAL = ("id", "description", "timestamp", "begin", "end", "name2")
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


_KML_ROOT = re.compile(rb"^(?:\s|<\?xml[^>]*\?>|<!--.*?-->)*<(?:[A-Za-z_][\w.-]*:)?kml[\s>]", re.DOTALL)
SHP_MAGIC = b"\x00\x00\x27\x0a"  # the file code every .shp starts with (9994, big-endian)


def _check_kml_root(path: Path) -> None:
    """The document's root element must be <kml>: nothing else (a VRT, a GML, an HTML page) reaches GDAL as KML."""
    with open(path, "rb") as handle:
        head = handle.read(4096).lstrip(b"\xef\xbb\xbf")
    if not _KML_ROOT.match(head):
        raise IngestError(f"{path.name} is not a KML document (its root element is not <kml>)")


def _check_path(path: Path) -> Path:
    text = str(path)
    if text.startswith(("/vsi", "http:", "https:", "ftp:", "PG:")) or "://" in text:
        raise IngestError("only a local file can be loaded")
    if not path.is_file():
        raise IngestError(f"{path.name}: no such file")
    return path


def _check_kml(path: Path) -> None:
    """Refuse KML that would make a parser read other files, expand entities or fetch from the network."""
    tail = b""
    with open(path, "rb") as handle:
        while block := handle.read(SCAN_BYTES):
            window = (tail + block).lower()
            for marker in KML_REFUSED:
                if marker in window:
                    raise IngestError(
                        f"{path.name}: KML with a DOCTYPE, entities, includes or network links is refused; "
                        "export plain KML placemarks"
                    )
            tail = block[-32:]


def _zip_entries(path: Path, archive: zipfile.ZipFile, max_bytes: int) -> dict[str, zipfile.ZipInfo]:
    """The archive's files by lower-case name, once every entry has been checked."""
    try:
        entries = [e for e in archive.infolist() if not e.is_dir()]
    except (zipfile.BadZipFile, ValueError) as exc:
        raise IngestError(f"{path.name} is not a readable zip archive") from exc
    if len(entries) > MAX_ZIP_ENTRIES:
        raise IngestError(f"{path.name} holds more than {MAX_ZIP_ENTRIES} files")
    if sum(e.file_size for e in entries) > max_bytes:
        raise IngestError(f"{path.name} unpacks to more than {max_bytes // 1024**2} MB")
    wanted: dict[str, zipfile.ZipInfo] = {}
    for entry in entries:
        name = PurePosixPath(entry.filename.replace("\\", "/"))
        if name.is_absolute() or ".." in name.parts or entry.external_attr >> 28 == 0o12 or ":" in entry.filename:
            raise IngestError(f"{path.name} holds an entry with an unsafe path or a link")
        if entry.file_size > MAX_ZIP_RATIO * max(entry.compress_size, 1) and entry.file_size > 1024 * 1024:
            raise IngestError(f"{path.name} holds an entry that unpacks {MAX_ZIP_RATIO} times larger: refused")
        if name.suffix.lower() in ARCHIVES:
            raise IngestError(f"{path.name} holds another archive ({name.name}): zip the Shapefile's files directly")
        if name.name.startswith(".") or "__MACOSX" in name.parts:
            continue
        wanted[name.name.lower()] = entry
    return wanted


@contextmanager
def _unzipped_shapefile(path: Path, max_bytes: int = MAX_ZIP_BYTES) -> Iterator[Path]:
    """Extract a zipped Shapefile into a private temporary folder, refusing anything odd about the archive."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise IngestError(f"{path.name} is not a readable zip archive") from exc
    with archive, tempfile.TemporaryDirectory(prefix="geoserver-zip-") as tmp:
        wanted = _zip_entries(path, archive, max_bytes)
        shps = [n for n in wanted if n.endswith(".shp")]
        if len(shps) != 1:
            raise IngestError(f"{path.name} must hold exactly one .shp file (found {len(shps)})")
        stem = shps[0][:-4]
        for ext in (".shx", ".dbf"):
            if stem + ext not in wanted:
                raise IngestError(
                    f"{path.name}: the Shapefile has no {ext} file; zip the .shp with its .shx, .dbf and .prj"
                )
        out = Path(tmp)
        for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
            part = wanted.get(stem + ext)
            if part is not None:
                # Written under a fixed name: nothing from the archive decides where a file lands.
                _extract(archive, part, out / f"layer{ext}", max_bytes)
        shp = out / "layer.shp"
        with open(shp, "rb") as handle:
            if handle.read(4) != SHP_MAGIC:
                raise IngestError(f"{path.name}: {stem}.shp is not a Shapefile")
        yield shp


def _extract(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, target: Path, max_bytes: int) -> None:
    """Copy one entry out, counting what really comes out: a header that lies about the size stops at the limit."""
    written = 0
    with archive.open(entry) as source, open(target, "wb") as out:
        while block := source.read(SCAN_BYTES):
            written += len(block)
            if written > max_bytes:
                raise IngestError(f"{target.name} unpacks to more than {max_bytes // 1024**2} MB")
            out.write(block)


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


def read_file(
    path: Path, *, layer: str | None = None, crs: str | None = None, max_unzipped_bytes: int = MAX_ZIP_BYTES
) -> gpd.GeoDataFrame:
    """Read a GeoJSON, GeoPackage, KML, zipped Shapefile or CSV file; `crs` applies when the file has none."""
    path = _check_path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise IngestError(f"{path.name}: unsupported format; use one of {', '.join(sorted(FORMATS))}")
    driver, prefixes = FORMATS[suffix]
    _sniff(path, prefixes)
    crs = check_crs_code(crs) if crs is not None else None
    if driver == "GeoJSON":
        check_geojson_crs(path)
    if driver in KML_DRIVERS:
        _check_kml(path)
        _check_kml_root(path)
    # Whatever a file holds, GDAL reaches nothing over the network while reading it.
    pyogrio.set_gdal_config_options({"CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".none", "GDAL_HTTP_TIMEOUT": "1"})
    try:
        if suffix == ".csv":
            frame = _read_csv(path, crs)
        elif suffix == ".zip":
            with _unzipped_shapefile(path, max_unzipped_bytes) as shp:
                frame = _read_with_gdal(shp, driver, layer)
        else:
            frame = _read_with_gdal(path, driver, layer)
    except IngestError:
        raise
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, ValueError, UnicodeError) as exc:
        raise IngestError(f"{path.name} cannot be read as {driver}: {str(exc).splitlines()[0][:200]}") from exc
    check_file_crs(frame, path.name)
    if frame.crs is None:
        if crs is None:
            raise IngestError(
                f"{path.name} has no coordinate reference system: give its EPSG code as `crs` (with --crs on the "
                "command line), for example EPSG:3776 for the City's 3TM survey grid"
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
    # Arrow: about twice as fast (measured). A malformed geometry (an unclosed ring) is mended, not fatal to the file.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Non closed ring detected", RuntimeWarning)  # GDAL's word for it: mended
        frame = pyogrio.read_dataframe(path, layer=layer, use_arrow=True, on_invalid="fix")
    return _tidy_kml(frame) if driver in KML_DRIVERS else frame


def _tidy_kml(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """KML as a layer: drop the drawing settings GDAL adds to every placemark and the columns no placemark fills;
    the placemark's <name> becomes `name` (its ExtendedData fields keep their own names)."""
    empty = [c for c in KML_OPTIONAL if c in frame.columns and frame[c].isna().all()]
    frame = frame.drop(columns=[c for c in KML_DRAWING if c in frame.columns] + empty)
    if "Name" in frame.columns and "name" not in frame.columns:
        frame = frame.rename(columns={"Name": "name"})
    return frame
