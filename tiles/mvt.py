"""The MVT query of one layer, built once per catalogue load; a request binds only the tile's numbers.

Two plans per layer and zoom:
- features: every feature that touches the tile (plus a buffer), clipped and quantised by ST_AsMVTGeom, public
  fields only, features smaller than about a pixel dropped below DETAIL_ZOOM, at most FEATURE_CAP per tile;
- clusters (dense point layers at low zoom): points counted per cell of a grid in tile space, one point per
  non-empty cell with a `point_count` attribute, so a tile over a million points stays small and fast to build.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from psycopg import sql

from layers.catalogue.records import Layer
from layers.sqlcompose import Slot
from tiles.grids import DEFAULT_TMS, TileXYZ, bounds, get_tms
from tiles.lonlat import EARTH_RADIUS_M, M_PER_DEGREE_X, affine_y, latitude, longitude

EXTENT = 4096  # MVT tile extent, in tile units
BUFFER = 64  # tile units drawn beyond each edge, so strokes and symbols don't clip at tile seams
FEATURE_CAP = 20_000  # features per layer per tile at the most
DETAIL_ZOOM = 14  # from this zoom on, every feature is kept whatever its size
MIN_SIZE_PX = 1.0  # below DETAIL_ZOOM, drop features smaller than a pixel of the grid's 256-pixel tiles
CLUSTER_ABOVE = 1_000  # cluster a point layer at zooms where a tile would hold more points than this on average
CLUSTER_CELL = 64  # tile units per cluster cell: 64 x 64 cells per tile
CELLS = EXTENT // CLUSTER_CELL  # cluster cells along a tile's side
CLUSTER_COUNT = "point_count"

# Types ST_AsMVT encodes natively; anything else (timestamps, json, numeric...) travels as text.
NATIVE_TYPES = {"boolean", "smallint", "integer", "bigint", "real", "double precision", "text", "character varying"}
INTEGER_TYPES = {"smallint", "integer", "bigint"}

ENVELOPE = sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, 3857)").format(*map(Slot, ("xmin", "ymin", "xmax", "ymax")))
BUFFERED = sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, 3857)").format(*map(Slot, ("bxmin", "bymin", "bxmax", "bymax")))
# The same two boxes in degrees, for tables that keep longitude/latitude only (computed in Python, exact).
GEO_ENVELOPE = sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, 4326)").format(
    *map(Slot, ("lon_min", "lat_min", "lon_max", "lat_max"))
)
GEO_BUFFERED = sql.SQL("ST_MakeEnvelope({}, {}, {}, {}, 4326)").format(
    *map(Slot, ("blon_min", "blat_min", "blon_max", "blat_max"))
)


def _attribute(name: str, data_type: str) -> sql.Composable:
    column = sql.Identifier(name)
    if data_type in NATIVE_TYPES:
        return column
    if data_type in {"numeric", "decimal"}:
        return sql.SQL("{}::double precision AS {}").format(column, column)
    return sql.SQL("{}::text AS {}").format(column, column)


def feature_id_field(layer: Layer) -> str | None:
    """The public integer id column that becomes the MVT feature id, or None (text ids stay properties)."""
    for f in layer.fields:
        if f.name == layer.id_column and f.data_type in INTEGER_TYPES:
            return f.name
    return None


def _geometry_3857(layer: Layer, *, buffered: bool, affine: bool) -> tuple[sql.Composable, sql.Composable]:
    """The layer's geometry in EPSG:3857, and an envelope test that uses its GiST index."""
    if layer.geometry_3857_column:
        column = sql.Identifier(layer.geometry_3857_column)
        return column, sql.SQL("{} && {}").format(column, BUFFERED if buffered else ENVELOPE)
    # Published in place, longitude/latitude only: the index test takes the tile's box in degrees, and each row is
    # mapped by the tile's affine transform (arithmetic on the vertices) where it is precise enough, else by
    # ST_Transform (PROJ, per vertex), measured about twice as costly.
    column = sql.Identifier(layer.geometry_column)
    index_test = sql.SQL("{} && {}").format(column, GEO_BUFFERED if buffered else GEO_ENVELOPE)
    if affine:
        affine_map = sql.SQL("ST_Affine({}, {}, 0, 0, {}, 0, {})").format(column, *map(Slot, ("kx", "ky", "yoff")))
        return affine_map, index_test
    return sql.SQL("ST_Transform({}, 3857)").format(column), index_test


def _size_test(layer: Layer, geom: sql.Composable) -> sql.Composable:
    """Features at least about a pixel wide or high; a geometry's box is stored with it, so no vertex is read."""
    if layer.geometry_3857_column:
        return sql.SQL(" AND (ST_XMax({g}) - ST_XMin({g}) >= {size} OR ST_YMax({g}) - ST_YMin({g}) >= {size})").format(
            g=geom, size=Slot("min_size")
        )
    # In degrees at the tile's latitude, on the stored 4326 box: no transform at all.
    g = sql.Identifier(layer.geometry_column)
    return sql.SQL(" AND (ST_XMax({g}) - ST_XMin({g}) >= {dx} OR ST_YMax({g}) - ST_YMin({g}) >= {dy})").format(
        g=g, dx=Slot("min_dx"), dy=Slot("min_dy")
    )


def _layer_parts(layer: Layer, index_test: sql.Composable) -> dict[str, sql.Composable]:
    """What every tile statement names: the MVT layer's name and extent, the table and its index test."""
    return {
        "name": sql.Literal(layer.id),
        "extent": sql.Literal(EXTENT),
        "table": layer.table,
        "index_test": index_test,
    }


def features_query(layer: Layer, *, size_floor: bool = True, affine: bool = False) -> sql.Composed:
    """ST_AsMVT over the layer's features in one tile; binds the envelope, its buffer and (if any) the size floor."""
    geom, index_test = _geometry_3857(layer, buffered=True, affine=affine)
    id_name: sql.Composable = sql.SQL("NULL")
    if feature_id_field(layer) is not None:
        # An integer id travels as the MVT feature id, not repeated as a property: repeating it cost about a
        # tenth of a parcel tile's build time (measured with pgbench on the benchmark city).
        id_name = sql.Literal(layer.id_column)
    attributes = [_attribute(f.name, f.data_type) for f in layer.fields]
    size_test: sql.Composable = sql.SQL("")
    # Points have no size; nor can a mixed "Geometry" layer's points be told apart by their box.
    if size_floor and "Point" not in layer.geometry_type and layer.geometry_type != "Geometry":
        size_test = _size_test(layer, geom)
    return sql.SQL(
        "SELECT ST_AsMVT(t, {name}, {extent}, 'geom', {id_name}) FROM ("
        "SELECT {attributes}ST_AsMVTGeom({geom}, {envelope}, {extent}, {buffer}, true) AS geom "
        "FROM {table} WHERE {index_test}{size_test} LIMIT {cap}"
        ") AS t WHERE t.geom IS NOT NULL"
    ).format(
        **_layer_parts(layer, index_test),
        id_name=id_name,
        attributes=sql.SQL("").join(sql.SQL("{}, ").format(a) for a in attributes),
        geom=geom,
        envelope=ENVELOPE,
        buffer=sql.Literal(BUFFER),
        size_test=size_test,
        cap=sql.Literal(FEATURE_CAP),
    )


def _cell_xy(layer: Layer) -> tuple[sql.Composable, sql.Composable, sql.Composable]:
    """A point layer's rows in the tile's cluster cells (fractional column and row), and the tile's index test.

    A point's cell is first placed on the zoom's whole grid of cells, with one factor and one offset per axis that
    every tile of the zoom shares, then the tile's first column or row (a whole number) is taken away, which floating
    point does exactly: two neighbouring tiles see a point on their common edge at the same place, and one of them
    counts it."""
    if layer.geometry_3857_column:
        geom, index_test = _geometry_3857(layer, buffered=False, affine=False)
        x = sql.SQL("ST_X({}) * {} + {}").format(geom, Slot("cells_per_m"), Slot("grid_x0"))
        y = sql.SQL("{} - ST_Y({}) * {}").format(Slot("grid_y0"), geom, Slot("cells_per_m"))
    else:
        # Longitude/latitude only: Mercator's own formula on each point's two numbers, exact and far cheaper than
        # PROJ, the zoom's numbers folded into the factors (bound per tile, not computed per row).
        geom = sql.Identifier(layer.geometry_column)
        index_test = sql.SQL("{} && {}").format(geom, GEO_ENVELOPE)
        x = sql.SQL("ST_X({}) * {} + {}").format(geom, Slot("cells_per_deg_lon"), Slot("grid_x0"))
        y = sql.SQL("{} - ln(tan(ST_Y({}) * {} + pi() / 4)) * {}").format(
            Slot("grid_y0"), geom, sql.Literal(math.pi / 360), Slot("cells_per_radius")
        )
    column = sql.SQL("({}) - {}").format(x, Slot("tile_col0"))
    row = sql.SQL("({}) - {}").format(y, Slot("tile_row0"))
    return column, row, index_test


def clusters_query(layer: Layer) -> sql.Composed:
    """ST_AsMVT of point counts per cell; binds the envelope in degrees and the zoom's cell factors and offsets.

    Each point's cell position is computed once (the OFFSET 0 keeps PostgreSQL from substituting the expressions into
    the range test and the grouping, which evaluated them three times: 24-39% of a cluster tile's time in the
    database on the in-place City's service requests), then one integer per cell is grouped.
    """
    x, y, index_test = _cell_xy(layer)
    return sql.SQL(
        "SELECT ST_AsMVT(t, {name}, {extent}, 'geom') FROM ("
        "SELECT ST_MakePoint((k / {cells} + 0.5) * {cell}, (mod(k, {cells}) + 0.5) * {cell}) AS geom, {count} FROM ("
        "SELECT floor(x)::int * {cells} + floor(y)::int AS k, count(*)::int AS {count} FROM ("
        "SELECT {x} AS x, {y} AS y FROM {table} WHERE {index_test} OFFSET 0"
        # A point on the right or bottom edge belongs to the next tile: each point is counted exactly once.
        ") AS p WHERE x >= 0 AND x < {cells} AND y >= 0 AND y < {cells} GROUP BY k"
        ") AS c) AS t"
    ).format(
        **_layer_parts(layer, index_test),
        cell=sql.Literal(CLUSTER_CELL),
        cells=sql.Literal(CELLS),
        count=sql.Identifier(CLUSTER_COUNT),
        x=x,
        y=y,
    )


def clustered_zooms(layer: Layer) -> frozenset[int]:
    """Zooms at which a point layer is dense enough to cluster, from its feature count and extent."""
    if layer.geometry_type != "Point" or layer.bbox is None:
        return frozenset()
    xmin, ymin, xmax, ymax = layer.bbox
    tms = get_tms(DEFAULT_TMS)
    dense = set()
    for z in range(layer.min_zoom, layer.max_zoom + 1):
        top_left, bottom_right = tms.tile(xmin, ymax, z), tms.tile(xmax, ymin, z)
        tiles = (bottom_right.x - top_left.x + 1) * (bottom_right.y - top_left.y + 1)
        if layer.feature_count / max(1, tiles) > CLUSTER_ABOVE:
            dense.add(z)
    return frozenset(dense)


@lru_cache(maxsize=64)
def _cell_grid(tms: str, z: int) -> tuple[float, float, float]:
    """The zoom's grid of cluster cells, the same for all its tiles: its top left corner (x, y) and a cell's size in
    metres (computed once per zoom, not per tile)."""
    origin = bounds(TileXYZ(tms, z, 0, 0))
    return origin.xmin, origin.ymax, (origin.xmax - origin.xmin) * CLUSTER_CELL / EXTENT


def tile_params(t: TileXYZ) -> dict[str, Any]:
    """The values a tile binds into any of the plans (each plan uses some of them)."""
    b = bounds(t)
    width = b.xmax - b.xmin
    margin = width * BUFFER / EXTENT
    min_size = width / 256 * MIN_SIZE_PX if t.z < DETAIL_ZOOM else 0.0
    grid_x, grid_y, cell_m = _cell_grid(t.tms, t.z)
    ky, yoff = affine_y(b.ymin, b.ymax)
    return {
        "xmin": b.xmin,
        "ymin": b.ymin,
        "xmax": b.xmax,
        "ymax": b.ymax,
        "bxmin": b.xmin - margin,
        "bymin": b.ymin - margin,
        "bxmax": b.xmax + margin,
        "bymax": b.ymax + margin,
        "min_size": min_size,
        # Cluster cells on the zoom's whole grid (the same numbers for every tile of the zoom): a point's column is
        # x * cells_per_m + grid_x0, its row grid_y0 - y * cells_per_m (metres), or from degrees through
        # cells_per_deg_lon and cells_per_radius (Mercator's y over the Earth's radius); then the tile's first
        # column and row are taken away.
        "cells_per_m": 1 / cell_m,
        "grid_x0": -grid_x / cell_m,
        "grid_y0": grid_y / cell_m,
        "cells_per_deg_lon": M_PER_DEGREE_X / cell_m,
        "cells_per_radius": EARTH_RADIUS_M / cell_m,
        "tile_col0": float(t.x * CELLS),
        "tile_row0": float(t.y * CELLS),
        # For tables in longitude/latitude (see tiles.lonlat): the same boxes in degrees, the size floor in
        # degrees at this tile's latitude, and the tile's affine map from degrees to Web Mercator metres.
        "lon_min": longitude(b.xmin),
        "lat_min": latitude(b.ymin),
        "lon_max": longitude(b.xmax),
        "lat_max": latitude(b.ymax),
        "blon_min": longitude(b.xmin - margin),
        "blat_min": latitude(b.ymin - margin),
        "blon_max": longitude(b.xmax + margin),
        "blat_max": latitude(b.ymax + margin),
        "min_dx": min_size / M_PER_DEGREE_X,
        "min_dy": min_size / ky,
        "kx": M_PER_DEGREE_X,
        "ky": ky,
        "yoff": yoff,
    }
