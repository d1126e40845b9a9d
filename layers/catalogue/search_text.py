"""The text a layer is searched by: one SQL expression, shared by the index a load builds and by `/search`.

PostgreSQL uses an expression index only for the very same expression, so both sides build it here, from the same
names: the layer's `searchable_fields` that hold text, in manifest order. Fields of other kinds are left out (a
number or a time cast to text is not an immutable expression, so it could not be indexed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from psycopg import sql

from layers.catalogue.fieldtypes import kind_of

TRIGRAM_EXTENSION = "pg_trgm"  # trigram matching: spelling mistakes, and an index for ILIKE '%...%'


def text_fields(searchable: Sequence[str], data_types: Mapping[str, str]) -> tuple[str, ...]:
    """The searchable fields whose column type holds text (given as {field: column type})."""
    return tuple(name for name in searchable if name in data_types and kind_of(data_types[name]) == "string")


def document(names: Sequence[str], alias: str | None = None) -> sql.Composable:
    """The searched text of a row: the fields joined by spaces, a missing value as empty text."""
    columns = [sql.Identifier(alias, name) if alias else sql.Identifier(name) for name in names]
    parts = [sql.SQL("coalesce({}::text, '')").format(column) for column in columns]
    return sql.SQL("({})").format(sql.SQL(" || ' ' || ").join(parts))
