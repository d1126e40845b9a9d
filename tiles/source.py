"""Tile sources: one per layer, each with its TileJSON description and its prepared MVT query."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from psycopg import AsyncConnection, sql

from layers.catalogue.records import Layer
from layers.sqlcompose import render
from tiles.grids import TileXYZ
from tiles.lonlat import affine_zooms
from tiles.mvt import (
    CLUSTER_COUNT,
    DETAIL_ZOOM,
    EXTENT,
    clustered_zooms,
    clusters_query,
    feature_id_field,
    features_query,
    tile_params,
)

# How a field's type reads in TileJSON's vector_layers.fields.
FIELD_KINDS = {
    "boolean": "Boolean",
    "smallint": "Number",
    "integer": "Number",
    "bigint": "Number",
    "real": "Number",
    "double precision": "Number",
    "numeric": "Number",
}


class TileSource(Protocol):
    """Anything that can describe itself in TileJSON and build one tile."""

    id: str
    version: int
    is_public: bool

    def vector_layer(self) -> dict[str, Any]:
        """This source's entry in TileJSON's `vector_layers`."""
        ...

    async def build(self, conn: AsyncConnection[Any], tile: TileXYZ) -> bytes:
        """The tile's MVT bytes (empty when it has nothing)."""
        ...


class LayerTileSource:
    """A catalogue layer as vector tiles. Its SQL is composed once, here; requests bind only numbers."""

    def __init__(self, layer: Layer) -> None:
        self.layer = layer
        self.id = layer.id
        self.version = layer.version
        self.is_public = layer.is_public
        self.min_zoom = layer.min_zoom
        self.max_zoom = layer.max_zoom
        self.cluster_zooms = clustered_zooms(layer)
        # Without a stored 3857 column, the zooms where each tile's affine map is precise enough for this layer.
        self.affine_zooms = (
            frozenset()
            if layer.geometry_3857_column
            else affine_zooms(layer.bbox, range(self.min_zoom, self.max_zoom + 1), EXTENT)
        )
        # Up to five plans, each composed once: clusters for dense points at low zoom, features with a size floor
        # below DETAIL_ZOOM, every feature from DETAIL_ZOOM on (no per-row size test to pay for), and the last two
        # again with the tile's affine map instead of a per-row ST_Transform, for tables in longitude/latitude.
        self._plans: dict[str, sql.Composed] = {
            "features": features_query(layer),
            "detail": features_query(layer, size_floor=False),
        }
        if self.affine_zooms:
            self._plans["features affine"] = features_query(layer, affine=True)
            self._plans["detail affine"] = features_query(layer, size_floor=False, affine=True)
        if layer.geometry_type == "Point":
            self._plans["clusters"] = clusters_query(layer)
        self._text: dict[str, bytes] = {}

    def vector_layer(self) -> dict[str, Any]:
        """This layer's TileJSON `vector_layers` entry: public fields only."""
        as_id = feature_id_field(self.layer)  # carried as each feature's id, not as a property
        fields = {f.name: FIELD_KINDS.get(f.data_type, "String") for f in self.layer.fields if f.name != as_id}
        if self.cluster_zooms:
            fields[CLUSTER_COUNT] = "Number"
        return {
            "id": self.id,
            "description": self.layer.title_in("en"),
            "minzoom": self.min_zoom,
            "maxzoom": self.max_zoom,
            "fields": fields,
        }

    def plan_for(self, z: int) -> str:
        """Which query shape serves zoom z."""
        if z in self.cluster_zooms:
            return "clusters"
        plan = "features" if z < DETAIL_ZOOM else "detail"
        return f"{plan} affine" if z in self.affine_zooms else plan

    def sql_for(self, z: int) -> bytes:
        """The exact statement this source runs at zoom z (also used by the benchmark's pgbench scripts)."""
        plan = self.plan_for(z)
        text = self._text.get(plan)
        if text is None:
            # Rendered to bytes once: the same text each time lets psycopg keep it prepared per connection.
            text = self._text[plan] = render(self._plans[plan])
        return text

    async def build(self, conn: AsyncConnection[Any], tile: TileXYZ) -> bytes:
        """The layer's MVT for one tile; empty outside the layer's zoom range."""
        if not self.min_zoom <= tile.z <= self.max_zoom:
            return b""
        cur = await conn.execute(self.sql_for(tile.z), tile_params(tile), prepare=True, binary=True)
        row = await cur.fetchone()
        return bytes(row[0]) if row and row[0] else b""


class TileSources:
    """The tile sources of one catalogue load, by layer id."""

    def __init__(self, layers: Iterable[Layer] = ()) -> None:
        self._sources = {layer.id: LayerTileSource(layer) for layer in layers}

    def get(self, layer_id: str) -> LayerTileSource:
        """The source of a layer the caller has already been allowed to see."""
        return self._sources[layer_id]

    def __len__(self) -> int:
        return len(self._sources)
