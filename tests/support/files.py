"""Files a community group would upload, and hostile ones, built by the tests themselves."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import geopandas as gpd
from shapely.geometry import Polygon


def kml_events(path: Path, events: Sequence[dict[str, Any]]) -> Path:
    """A KML of point placemarks, each event's fields (name, starts, ends, ...) as ExtendedData."""
    marks = []
    for event in events:
        data = "".join(
            f'<Data name="{escape(k)}"><value>{escape(str(v))}</value></Data>'
            for k, v in event.items()
            if k not in ("lon", "lat", "name")
        )
        marks.append(
            f"<Placemark><name>{escape(str(event['name']))}</name><ExtendedData>{data}</ExtendedData>"
            f"<Point><coordinates>{event['lon']},{event['lat']}</coordinates></Point></Placemark>"
        )
    body = "".join(marks)
    path.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2"><Document>{body}'
        "</Document></kml>",
        encoding="utf-8",
    )
    return path


def zipped_shapefile(path: Path, frame: gpd.GeoDataFrame, *, leave_out: Sequence[str] = ()) -> Path:
    """A zip of a Shapefile's parts (optionally without some of them, e.g. ".prj")."""
    folder = path.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_file(folder / "plots.shp", driver="ESRI Shapefile", engine="pyogrio")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for part in sorted(folder.iterdir()):
            if part.suffix not in leave_out:
                archive.write(part, part.name)
    return path


def garden_plots(n: int = 6) -> gpd.GeoDataFrame:
    """Plots of 10 x 10 m in a row near downtown, in EPSG:3776 (the City's survey grid), with a private field."""
    origin = gpd.GeoSeries.from_xy([-114.07], [51.04], crs="EPSG:4326").to_crs(3776).iloc[0]
    squares = [
        Polygon([(x, origin.y), (x + 10, origin.y), (x + 10, origin.y + 10), (x, origin.y + 10)])
        for x in (origin.x + 15 * i for i in range(n))
    ]
    return gpd.GeoDataFrame(
        {"plot": [f"P{i}" for i in range(1, n + 1)], "crop": ["kale"] * n, "holder": [f"holder-{i}" for i in range(n)]},
        geometry=squares,
        crs="EPSG:3776",
    )


def zip_of(path: Path, entries: dict[str, bytes], *, symlink: str | None = None) -> Path:
    """A zip with these entries (name: bytes), and optionally an entry that is a symbolic link."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = 0o120777 << 16
            archive.writestr(info, "/etc/passwd")
    return path


def zip_bomb(path: Path, unpacked_mb: int = 64) -> Path:
    """A small zip whose .shp unpacks to many megabytes of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb.shp", b"\0" * unpacked_mb * 1024 * 1024)
        archive.writestr("bomb.shx", b"\0" * 100)
        archive.writestr("bomb.dbf", b"\0" * 100)
    path.write_bytes(buffer.getvalue())
    return path
