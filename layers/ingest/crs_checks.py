"""Coordinate reference systems an upload or a load may bring, checked before PROJ or GDAL act on them.

A PROJ string or WKT can name files on this server (grids, init files, WKT2 parameter files) that PROJ opens, and the
`crs` member of GeoJSON as written before RFC 7946 can link to a definition that GDAL fetches while reading the file.
So a CRS given beside a file is an authority code; a GeoJSON `crs` member must name one (it is read as JSON, escapes
and all, before GDAL sees the file); and a CRS read from any other file is refused if it names files or addresses.
"""

from __future__ import annotations

import json
import mmap
import re
from pathlib import Path
from typing import Any

import geopandas as gpd
import pyproj

from layers.errors import IngestError

_CODE = re.compile(
    r"(?i)^(?:(?:EPSG|ESRI):[0-9]{1,6}|OGC:CRS84|urn:ogc:def:crs:(?:EPSG::[0-9]{1,6}|OGC:1\.3:CRS84)"
    r"|https?://www\.opengis\.net/def/crs/(?:EPSG/0/[0-9]{1,6}|OGC/1\.3/CRS84))$"
)
_REACHING_OUT = re.compile(
    r"(?i)nadgrids|geoidgrids|gridshift|grids=|parameterfile|\+init=|file:|/vsi"
    r"|(?:https?|ftp)://(?!www\.opengis\.net/def/crs/)"
)
# A member named crs in any case (GDAL matches member names so), or an escape that could spell one.
_MAYBE_CRS = re.compile(rb"(?i)crs|\\u")


def check_crs_code(crs: str) -> str:
    """A CRS given beside a file: an authority code PROJ knows (EPSG:3776, OGC:CRS84 or their OGC names)."""
    code = crs.strip()
    if not _CODE.match(code):
        raise IngestError(f"{crs[:60]!r} is not a CRS code: give one such as EPSG:3776")
    try:
        pyproj.CRS.from_user_input(code)
    except pyproj.exceptions.CRSError:
        raise IngestError(
            f"{code!r} is not a coordinate reference system PROJ knows: give one such as EPSG:3776"
        ) from None
    return code


def check_file_crs(frame: gpd.GeoDataFrame, name: str) -> None:
    """Refuse a CRS read from a file that names files or addresses, before anything transforms with it."""
    if frame.crs is not None and _REACHING_OUT.search(f"{frame.crs.srs}\n{frame.crs.to_wkt()}"):
        raise IngestError(f"{name}: its coordinate reference system names files or addresses; use an EPSG code")


def check_geojson_crs(path: Path) -> None:
    """Refuse a GeoJSON with a `crs` member (anywhere: GDAL reads those of geometries too) that is not an authority
    code; a file that cannot hold one (no such name, no escape) is not parsed here."""
    if path.stat().st_size == 0:
        return
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as text:
        if not _MAYBE_CRS.search(text):
            return
    with path.open("rb") as file:
        try:
            json.load(file, object_pairs_hook=lambda pairs: _without_foreign_crs(pairs, path.name))
        except (ValueError, RecursionError):
            raise IngestError(f"{path.name} is not valid JSON") from None


def _without_foreign_crs(pairs: list[tuple[str, Any]], name: str) -> dict[str, Any]:
    for key, value in pairs:
        if key.lower() == "crs" and value is not None and not _names_a_code(value):
            raise IngestError(
                f"{name}: its crs member is not an EPSG code (it links elsewhere or defines one itself); GeoJSON "
                "(RFC 7946) has no crs member: remove it, and give an EPSG code as crs if the coordinates are not "
                "WGS 84"
            )
    return dict(pairs)


def _names_a_code(crs: Any) -> bool:
    properties = crs.get("properties") if isinstance(crs, dict) else None
    if not isinstance(properties, dict):
        return False
    kind = str(crs.get("type", "")).lower()
    if kind == "name":
        return isinstance(properties.get("name"), str) and bool(_CODE.match(properties["name"]))
    return kind == "epsg" and isinstance(properties.get("code"), int) and not isinstance(properties["code"], bool)
