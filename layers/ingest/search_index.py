"""The trigram index `/search` reads, built by a load beside the layer's other indexes.

Why trigrams (pg_trgm) rather than full-text search: residents type parts of names and street addresses
("bowness lib", "12 ave sw"), and make spelling mistakes; a GIN trigram index serves both `ILIKE '%part%'` and
word similarity, in any language's words, with no dictionary to choose. The extension ships with PostgreSQL's
contrib (trusted since PostgreSQL 13); it is created here, at load time, rather than by a migration, so a database
where it cannot be created still loads its layers: search then matches the same way without the index, and without
the spelling fallback.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import sql

from layers.catalogue.manifest import LayerManifest
from layers.catalogue.search_text import TRIGRAM_EXTENSION, document, text_fields
from layers.sqlcompose import render

log = logging.getLogger("layers.ingest")


def ensure_trigram(conn: psycopg.Connection[Any]) -> bool:
    """Create the pg_trgm extension if it is missing; False (and a warning) when the database refuses."""
    try:
        with conn.transaction():  # a savepoint: a refusal must not abort the load
            conn.execute(render(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(TRIGRAM_EXTENSION))))
    except psycopg.Error as exc:
        log.warning("search works without an index: the %s extension cannot be created (%s)", TRIGRAM_EXTENSION, exc)
        return False
    return True


def index_searchable(
    conn: psycopg.Connection[Any], table: sql.Identifier, staging: str, manifest: LayerManifest, types: dict[str, str]
) -> bool:
    """A GIN trigram index on the layer's searched text, when it has searchable text fields; True if built."""
    names = text_fields(manifest.searchable_fields, types)
    if not names or not ensure_trigram(conn):
        return False
    conn.execute(
        render(
            sql.SQL("CREATE INDEX {} ON {} USING gin ({} gin_trgm_ops)").format(
                sql.Identifier(f"{staging}_search_trgm"), table, document(names)
            )
        )
    )
    return True
