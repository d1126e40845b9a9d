"""Features leave the database already encoded as GeoJSON text: the SQL that builds it, from public fields only.

Python only joins the texts, so a page of a thousand features costs the server almost nothing beyond the query.
"""

from __future__ import annotations

import json

from psycopg import sql

from layers.catalogue.records import Layer


def properties_json(
    layer: Layer, extra: list[tuple[str, sql.Composable]] | None = None, names: tuple[str, ...] | None = None
) -> sql.Composable:
    """A JSON object (as text) of the public fields and `extra` computed values, keys in table order.

    Built by concatenation rather than json_build_object: the output is compact and there is no argument limit.
    Keys are JSON-encoded here from catalogue names and passed as quoted SQL literals.
    """
    chosen = layer.field_names if names is None else [layer.field(name).name for name in names]
    values = [(name, sql.Identifier(name)) for name in chosen] + list(extra or [])
    if not values:
        return sql.SQL("'{}'")
    parts: list[sql.Composable] = []
    for position, (name, value) in enumerate(values):
        key = ("{" if position == 0 else ",") + json.dumps(name, ensure_ascii=False) + ":"
        parts.append(sql.Literal(key))
        parts.append(sql.SQL("coalesce(to_json({})::text, 'null')").format(value))
    parts.append(sql.Literal("}"))
    return sql.SQL("({})").format(sql.SQL(" || ").join(parts))


def feature_json(
    layer: Layer,
    geometry: sql.Composable | None,
    *,
    digits: int = 8,
    extra: list[tuple[str, sql.Composable]] | None = None,
    names: tuple[str, ...] | None = None,
) -> sql.Composable:
    """One feature as GeoJSON text, built in the database (geometry None: `"geometry": null`; names: a subset)."""
    # Option 0: no "crs" member, which RFC 7946 removed (the CRS travels in the Content-Crs header).
    geojson = (
        sql.SQL("coalesce(ST_AsGeoJSON({}, {}, 0), 'null')").format(geometry, sql.Literal(digits))
        if geometry is not None
        else sql.SQL("'null'")
    )
    return sql.SQL(
        """'{{"type":"Feature","id":' || to_json({id})::text || ',"geometry":' || {geojson} """
        """|| ',"properties":' || {props} || '}}'"""
    ).format(id=sql.Identifier(layer.id_column), geojson=geojson, props=properties_json(layer, extra, names))
