"""Test layers: manifests, files, reading them back, removing them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from layers.catalogue.manifest import LayerManifest
from layers.catalogue.records import Layer
from layers.catalogue.registry import Registry, load_registry
from layers.queries.geojson import properties_json
from layers.sqlcompose import Slot, render


def manifest(layer_id: str, public_fields: list[str], **extra: Any) -> LayerManifest:
    """A valid manifest for a test layer loaded from a file."""
    data: dict[str, Any] = {
        "id": layer_id,
        "title": {"en": f"{layer_id} (test)", "fr": f"{layer_id} (essai)"},
        "description": {"en": "Test layer.", "fr": "Couche d'essai."},
        "category": "test",
        "department": "Test",
        "license": {"name": "Test licence"},
        "source": {"file": "unused.geojson"},
        "public_fields": public_fields,
    }
    data.update(extra)
    return LayerManifest.model_validate(data)


def write_geojson(path: Path, features: Sequence[tuple[Mapping[str, Any], Mapping[str, Any] | None]]) -> Path:
    """Write (properties, geometry) pairs as a GeoJSON FeatureCollection."""
    doc = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": p, "geometry": g} for p, g in features],
    }
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def point(lon: float, lat: float) -> dict[str, Any]:
    """A GeoJSON point."""
    return {"type": "Point", "coordinates": [lon, lat]}


def drop_layer(database_url: str, layer_id: str, table: str | None = None) -> None:
    """Take a test layer out of the catalogue, telling running apps; drop `table` too if it was published in place."""
    import psycopg
    from psycopg import sql

    from layers.ingest.publish import unpublish

    unpublish(database_url, layer_id, actor="tests")
    if table is not None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(*table.split(".", 1))))


# The demo City as the tests see it: generated at a fixed instant so events "now" are known.
DEMO_NOW = "2026-07-15T18:00:00+00:00"


def fresh_registry(database: str | psycopg.Connection[Any]) -> Registry:
    """The catalogue as a fresh registry (what a server would load now), from a URL or an open connection's."""
    return load_registry(database if isinstance(database, str) else database.info.dsn)


def features_query(layer: Layer, *, limit: int, offset: int = 0) -> tuple[bytes, dict[str, int]]:
    """Public fields, id and GeoJSON geometry of a page of features, in id order: what a test reads back."""
    query = sql.SQL(
        "SELECT {id} AS id, ST_AsGeoJSON({geom})::json AS geometry, {props}::json AS properties "
        "FROM {table} ORDER BY {id} LIMIT {limit} OFFSET {offset}"
    ).format(
        id=sql.Identifier(layer.id_column),
        geom=sql.Identifier(layer.geometry_column),
        props=properties_json(layer),
        table=layer.table,
        limit=Slot("limit"),
        offset=Slot("offset"),
    )
    return render(query), {"limit": limit, "offset": offset}


def one_row(database_url: str, query: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
    """The first row of a query a test asks the database directly (it must have one)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None, query
    return tuple(row)
