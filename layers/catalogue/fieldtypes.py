"""What kind of value a layer's column holds, as the catalogue records its type, and how values of a kind are cast."""

from __future__ import annotations

from typing import Literal

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
# The same kinds in JSON Schema, for queryables and the edit schema.
JSON_SCHEMA: dict[str, dict[str, str]] = {
    "integer": {"type": "integer"}, "number": {"type": "number"}, "string": {"type": "string"},
    "boolean": {"type": "boolean"}, "datetime": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"}, "object": {"type": "object"}, "other": {},
}  # fmt: skip


def kind_of(data_type: str) -> Kind:
    """The JSON Schema-ish kind of a column type, as the catalogue records it."""
    base = data_type.lower().split("(", 1)[0].strip()
    return _KINDS.get(base, "other")
