"""SQL building blocks for reading a layer's features, from catalogue names only and bound values.

Features leave the database already encoded as GeoJSON text: Python only joins them, so a page of a thousand
features costs the server almost nothing beyond the query itself.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from psycopg import sql

from layers.catalog import Field, Layer

Kind = Literal["integer", "number", "string", "boolean", "datetime", "date", "object", "other"]

_KINDS: dict[str, Kind] = {
    "bigint": "integer", "integer": "integer", "smallint": "integer", "int": "integer", "int2": "integer",
    "int4": "integer", "int8": "integer", "double precision": "number", "real": "number", "numeric": "number",
    "decimal": "number", "float4": "number", "float8": "number", "text": "string", "character varying": "string",
    "varchar": "string", "character": "string", "char": "string", "bpchar": "string", "citext": "string",
    "boolean": "boolean", "bool": "boolean", "timestamptz": "datetime",
    "timestamp with time zone": "datetime", "timestamp": "datetime", "timestamp without time zone": "datetime",
    "date": "date", "jsonb": "object", "json": "object",
}  # fmt: skip
# How a checked value of each kind is cast when bound, so the database never guesses its type.
SQL_CASTS: dict[str, str] = {
    "string": "text", "integer": "bigint", "number": "double precision", "boolean": "boolean",
    "datetime": "timestamptz", "date": "date",
}  # fmt: skip


class _Slot(sql.Composable):
    """Where a bound value goes, until `Binder.render` writes the real placeholder."""

    def as_bytes(self, context: Any = None) -> bytes:
        return b"\x00%d\x00" % self._obj


_SLOT = re.compile(rb"\x00(\d+)\x00")


class NamedSlot(sql.Composable):
    """A named placeholder that survives `%` in names and literals: render with `render_named`."""

    def as_bytes(self, context: Any = None) -> bytes:
        return b"\x00" + str(self._obj).encode() + b"\x00"


_NAMED_SLOT = re.compile(rb"\x00([A-Za-z_][A-Za-z0-9_]*)\x00")


def render_named(statement: sql.Composable, context: Any = None) -> bytes:
    """A statement with NamedSlots as bytes for `execute(statement, {name: value})`, every other `%` escaped."""
    text = statement.as_bytes(context).replace(b"%", b"%%")
    return _NAMED_SLOT.sub(lambda m: b"%(" + m.group(1) + b")s", text)


class Binder:
    """Collects bound values and renders statements that use them.

    psycopg reads every `%` of a statement run with parameters as a placeholder, even inside a quoted name or
    literal, so a field called `50%` would break the query. `render` doubles every `%` of the composed statement,
    then writes the real placeholders where the value slots are (NUL never appears in a name or literal).
    """

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def __call__(self, value: Any) -> sql.Composable:
        slot = len(self.params)
        self.params[f"p{slot}"] = value
        return _Slot(slot)

    def render(self, statement: sql.Composable) -> bytes:
        """The statement as bytes for `execute(statement, self.params)`."""
        text = statement.as_bytes(None).replace(b"%", b"%%")
        return _SLOT.sub(lambda m: b"%(p" + m.group(1) + b")s", text)


def kind_of(data_type: str) -> Kind:
    """The JSON Schema-ish kind of a column type, as the catalogue records it."""
    base = data_type.lower().split("(", 1)[0].strip()
    return _KINDS.get(base, "other")


def field_kind(item: Field) -> Kind:
    """The kind of a public field."""
    return kind_of(item.data_type)


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


def features_query(layer: Layer, *, limit: int, offset: int = 0) -> tuple[bytes, dict[str, int]]:
    """Public fields, id and GeoJSON geometry of a page of features, in id order (for tools and tests)."""
    query = sql.SQL(
        "SELECT {id} AS id, ST_AsGeoJSON({geom})::json AS geometry, {props}::json AS properties "
        "FROM {table} ORDER BY {id} LIMIT {limit} OFFSET {offset}"
    ).format(
        id=sql.Identifier(layer.id_column),
        geom=sql.Identifier(layer.geometry_column),
        props=properties_json(layer),
        table=layer.table,
        limit=NamedSlot("limit"),
        offset=NamedSlot("offset"),
    )
    return render_named(query), {"limit": limit, "offset": offset}
