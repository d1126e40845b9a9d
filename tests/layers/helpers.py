"""Small builders for test manifests and files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from layers.manifest import LayerManifest


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


def write_geojson(path: Path, features: list[tuple[dict[str, Any], dict[str, Any] | None]]) -> Path:
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

    from layers.publish import unpublish

    unpublish(database_url, layer_id, actor="tests")
    if table is not None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(*table.split(".", 1))))
