"""The coordinate reference systems the server speaks (OGC API Features Part 2), and their SQL.

Storage is EPSG:4326 in longitude/latitude order, which is CRS84. Every other CRS is reached with ST_Transform in
the database. EPSG:4326 as a *request or response* CRS means latitude/longitude order, as its EPSG definition says.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from psycopg import sql
from pyproj import Transformer
from pyproj.exceptions import ProjError

from layers.errors import InvalidParameter


@dataclass(frozen=True)
class Crs:
    """One supported CRS: its URI, its SRID in PostGIS, and whether its axis order is latitude first."""

    uri: str
    srid: int
    lat_first: bool = False
    projected: bool = False

    @property
    def header(self) -> str:
        """The value of a `Content-Crs` header."""
        return f"<{self.uri}>"


CRS84 = Crs("http://www.opengis.net/def/crs/OGC/1.3/CRS84", 4326)
EPSG_4326 = Crs("http://www.opengis.net/def/crs/EPSG/0/4326", 4326, lat_first=True)
EPSG_3857 = Crs("http://www.opengis.net/def/crs/EPSG/0/3857", 3857, projected=True)
# The City's survey grid: NAD83 / Alberta 3TM ref merid 114 W.
EPSG_3776 = Crs("http://www.opengis.net/def/crs/EPSG/0/3776", 3776, projected=True)

SUPPORTED: tuple[Crs, ...] = (CRS84, EPSG_4326, EPSG_3857, EPSG_3776)
STORAGE = CRS84
_BY_NAME: dict[str, Crs] = {}
for _crs in SUPPORTED:
    _code = _crs.uri.rsplit("/", 1)[-1]
    _authority = "OGC" if _code == "CRS84" else "EPSG"
    for _name in (_crs.uri, f"{_authority}:{_code}", f"[{_authority}:{_code}]"):
        _BY_NAME[_name] = _crs
        _BY_NAME[_name.replace("http://", "https://")] = _crs


def parse_crs(value: str | None, *, parameter: str, default: Crs = CRS84) -> Crs:
    """The CRS named by a request parameter (a URI, or a safe CURIE such as `[EPSG:3857]`); 400 when unsupported."""
    if value is None:
        return default
    crs = _BY_NAME.get(value.strip())
    if crs is None:
        raise InvalidParameter(
            f"unsupported CRS; use one of: {', '.join(c.uri for c in SUPPORTED)}", parameter=parameter
        )
    return crs


@cache
def to_lonlat(srid: int) -> Transformer:
    """The transformer from a CRS to longitude/latitude (EPSG:4326, x first), made once per CRS."""
    return Transformer.from_crs(srid, 4326, always_xy=True)


def check_domain(points: Sequence[tuple[float, float]], crs: Crs, *, parameter: str) -> None:
    """400 unless every x/y point lies where `crs` is defined (PostGIS would fail the query: "outside of domain")."""
    if crs.srid == STORAGE.srid or not points:
        return  # longitudes and latitudes are checked where they are read
    xs, ys = zip(*points, strict=True)
    try:
        lons, lats = to_lonlat(crs.srid).transform(xs, ys, errcheck=True)
        inside = all(math.isfinite(v) for v in (*lons, *lats))
    except ProjError:
        inside = False
    if not inside:
        raise InvalidParameter(
            f"coordinates outside the area {crs.uri.rsplit('/', 1)[-1]} can describe", parameter=parameter
        )


def to_storage(geometry: sql.Composable, crs: Crs) -> sql.Composable:
    """SQL turning a geometry given in `crs` (SRID unset or set) into storage coordinates (EPSG:4326, lon/lat)."""
    if crs.srid == STORAGE.srid:
        expr = sql.SQL("ST_SetSRID({}, 4326)").format(geometry)
        return sql.SQL("ST_FlipCoordinates({})").format(expr) if crs.lat_first else expr
    return sql.SQL("ST_Transform(ST_SetSRID({}, {}), 4326)").format(geometry, sql.Literal(crs.srid))


def from_storage(geometry: sql.Composable, crs: Crs, *, geometry_3857: sql.Composable | None = None) -> sql.Composable:
    """SQL turning a stored geometry into `crs`; uses the stored EPSG:3857 column when there is one."""
    if crs.srid == STORAGE.srid:
        return sql.SQL("ST_FlipCoordinates({})").format(geometry) if crs.lat_first else geometry
    if crs.srid == 3857 and geometry_3857 is not None:
        return geometry_3857
    return sql.SQL("ST_Transform({}, {})").format(geometry, sql.Literal(crs.srid))


def decimals(crs: Crs) -> int:
    """Digits after the decimal point in output coordinates: about a millimetre either way."""
    return 3 if crs.projected else 8
