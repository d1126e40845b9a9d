"""What a write may send: the layer's editable fields as JSON Schema, and a feature checked against them.

Only public fields are editable (a private name is refused exactly like an unknown one). Values are typed by the
field's kind; the geometry must be of the layer's kind, finite, within the valid coordinates of its CRS once in
EPSG:4326, and is stored 2D and valid, as uploads are.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import shapely
from psycopg.types.json import Jsonb

from layers.catalogue.fieldtypes import JSON_SCHEMA
from layers.catalogue.records import Layer
from layers.errors import InvalidParameter
from layers.geometry import repair, to_multi
from layers.queries import crs as crs_mod
from layers.queries.times import parse_date, parse_timestamp

MAX_LATITUDE = 85.05112878
MAX_VERTICES = 100_000
_GEOMETRY_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon")
_WRITABLE_KINDS = ("integer", "number", "string", "boolean", "datetime", "date", "object")


@dataclass(frozen=True)
class CheckedFeature:
    """A feature ready to store: typed public properties (only those sent), and its geometry as WKB (or None)."""

    fid: Any | None
    properties: dict[str, Any]
    geometry: bytes | None


def editable(layer: Layer) -> list[str]:
    """The public fields a write may set (the id is set by the path or the server, never changed)."""
    return [f.name for f in layer.fields if f.name != layer.id_column and f.kind in _WRITABLE_KINDS]


def json_schema(layer: Layer, url: str) -> dict[str, Any]:
    """The layer's features as JSON Schema 2020-12: what `POST`, `PUT` and `PATCH` accept."""
    properties = {name: {**JSON_SCHEMA[layer.field(name).kind], "title": name} for name in editable(layer)}
    geometry_types = _accepted_types(layer)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": url,
        "title": layer.title_in("en"),
        "type": "object",
        "required": ["type", "geometry", "properties"],
        "properties": {
            "type": {"const": "Feature"},
            "id": {"type": layer.id_kind},
            "geometry": {"type": "object", "properties": {"type": {"enum": geometry_types}}, "required": ["type"]},
            "properties": {"type": "object", "properties": properties, "additionalProperties": False},
        },
        "x-ogc-id-field": layer.id_column,
        "x-ogc-id-generated": layer.id_kind == "integer" and layer.id_column == "fid",
    }


def _accepted_types(layer: Layer) -> list[str]:
    if layer.geometry_type not in _GEOMETRY_TYPES:
        return list(_GEOMETRY_TYPES)
    base = layer.geometry_type.removeprefix("Multi")
    return [base, f"Multi{base}"] if layer.geometry_type.startswith("Multi") else [base]


def check_feature(
    layer: Layer, doc: Any, *, crs: crs_mod.Crs, partial: bool = False, where: str = "body"
) -> CheckedFeature:
    """A GeoJSON Feature (or, with `partial`, a merge-patch of one) checked against the layer; 400 naming the
    problem otherwise."""
    if not isinstance(doc, dict) or (not partial and doc.get("type") != "Feature"):
        raise InvalidParameter(f"{where}: a GeoJSON Feature is expected", parameter=where)
    unknown = set(doc) - {"type", "id", "geometry", "properties", "links", "bbox"}
    if unknown:
        raise InvalidParameter(f"{where}: unknown member {sorted(unknown)[0][:40]!r}", parameter=where)
    props = doc.get("properties", {} if partial else None)
    if not isinstance(props, dict) or (not partial and "geometry" not in doc):
        raise InvalidParameter(f"{where}: a feature needs properties and a geometry", parameter=where)
    if partial and "geometry" in doc and doc["geometry"] is None:
        raise InvalidParameter(f"{where}: a feature's geometry cannot be removed", parameter="geometry")
    if layer.id_column in props and props[layer.id_column] is None:
        raise InvalidParameter(f"{where}: the id cannot be removed", parameter=layer.id_column)
    fid = _fid(layer, doc.get("id", props.get(layer.id_column)), where)
    allowed = set(editable(layer))
    values: dict[str, Any] = {}
    for name, value in props.items():
        if name == layer.id_column:
            continue
        if name not in allowed:  # a private or unknown name, refused in the same words
            raise InvalidParameter(
                f"{where}: {name[:60]!r} is not an editable property of this collection", parameter=name[:60]
            )
        values[name] = _typed(layer.field(name).kind, value, name, where)
    geometry = _geometry(layer, doc["geometry"], crs, where) if "geometry" in doc else None
    return CheckedFeature(fid, values, geometry)


def _fid(layer: Layer, value: Any, where: str) -> Any | None:
    if value is None:
        return None
    kind = layer.id_kind
    if kind == "integer" and isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    if kind == "string" and isinstance(value, str) and 0 < len(value) <= 256 and "\x00" not in value:
        return value
    raise InvalidParameter(f"{where}: the id must be a{'n integer' if kind == 'integer' else ' text'}", parameter="id")


def _typed(kind: str, value: Any, name: str, where: str) -> Any:
    if value is None:
        return None
    bad = InvalidParameter(f"{where}: {name} must be {_DESCRIBED.get(kind, kind)}", parameter=name)
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool) or not -(2**63) <= value < 2**63:
            raise bad
    elif kind == "number":
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise bad
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise bad
    elif kind == "string":
        if not isinstance(value, str) or "\x00" in value or len(value) > 100_000:
            raise bad
    elif kind in ("datetime", "date"):
        if not isinstance(value, str):
            raise bad
        parsed: datetime | date = (parse_timestamp if kind == "datetime" else parse_date)(value, parameter=name)
        return parsed
    elif kind == "object":
        if not isinstance(value, dict | list):
            raise bad
        return Jsonb(value)
    return value


_DESCRIBED = {
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "string": "text",
    "datetime": "an RFC 3339 date-time",
    "date": "an RFC 3339 date",
    "object": "an object or a list",
}


def _geometry(layer: Layer, value: Any, crs: crs_mod.Crs, where: str) -> bytes:
    if not isinstance(value, dict) or value.get("type") not in _accepted_types(layer):
        accepted = " or ".join(_accepted_types(layer))
        raise InvalidParameter(f"{where}: the geometry must be a GeoJSON {accepted}", parameter="geometry")
    try:
        shape = shapely.from_geojson(json.dumps(value))
    except (shapely.errors.GEOSException, ValueError, TypeError):
        raise InvalidParameter(f"{where}: not a valid GeoJSON geometry", parameter="geometry") from None
    coords = shapely.get_coordinates(shape)
    if shape.is_empty or len(coords) > MAX_VERTICES or not np.isfinite(coords).all():
        raise InvalidParameter(
            f"{where}: the geometry must be non-empty, finite, at most {MAX_VERTICES} vertices", parameter="geometry"
        )
    shape = _to_storage(shape, crs)
    xmin, ymin, xmax, ymax = shapely.bounds(shape)
    if not (-180 <= xmin and xmax <= 180 and -MAX_LATITUDE <= ymin and ymax <= MAX_LATITUDE):
        raise InvalidParameter(
            f"{where}: coordinates fall outside longitude -180..180 / latitude -85..85 in {crs.uri}; check the CRS "
            "(Content-Crs) or whether they are swapped",
            parameter="geometry",
        )
    fixed, keep, _ = repair(np.array([shape], dtype=object))
    if not keep[0]:
        raise InvalidParameter(f"{where}: the geometry is empty once repaired", parameter="geometry")
    return bytes(shapely.to_wkb(to_multi(fixed, layer.geometry_type)[0]))


def _to_storage(shape: Any, crs: crs_mod.Crs) -> Any:
    if crs.srid == crs_mod.STORAGE.srid:
        return shapely.transform(shape, lambda xy: xy[:, ::-1]) if crs.lat_first else shape
    transformer = crs_mod.to_lonlat(crs.srid)
    return shapely.transform(shape, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
