"""Search in the database: the trigram index a load builds, the query that uses it, and life without pg_trgm."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import ValidationError

from layers.catalogue.records import Layer
from layers.catalogue.visibility import ANONYMOUS
from layers.ingest.load import load_file
from layers.ingest.search_index import ensure_trigram
from layers.queries.search import SearchQuery, SearchService, search_sql
from tests.support.layers import drop_layer, fresh_registry, manifest, point, write_geojson

LAYER = 'Search "Places"; --'
NAME, ADDRESS, COUNT = 'Name of "it"; --', "50% Address", "Visitors"
ROWS: list[dict[str, Any]] = [
    {NAME: "Bowness Public Library", ADDRESS: "6532 Bowness Rd NW", COUNT: 3},
    {NAME: "Bridgeland Library", ADDRESS: "917 Centre Ave NE", COUNT: 5},
    {NAME: "Bow Valley Arena", ADDRESS: "12 Bow Trail SW", COUNT: 7},
    {NAME: "Rainbow Park", ADDRESS: None, COUNT: 9},
]


@pytest.fixture(scope="module")
def layer(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Layer]:
    """A searchable layer with hostile names; its integer field is listed as searchable but is not text."""
    features = [(row, point(-114.2 + i / 100, 51.08)) for i, row in enumerate(ROWS)]
    path = write_geojson(tmp_path_factory.mktemp("search") / "places.geojson", features)
    load_file(database_url, manifest(LAYER, [NAME, ADDRESS, COUNT], searchable_fields=[NAME, COUNT, ADDRESS]), path)
    yield fresh_registry(database_url).resolve(LAYER, ANONYMOUS)
    drop_layer(database_url, LAYER)


def run(database_url: str, layer: Layer, text: str, point: tuple[float, float] | None = None) -> list[Any]:
    """Names found for `text`, in the order the search gives them."""

    async def work() -> list[Any]:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            q = SearchQuery(text, tuple(text.split()), point, 10)
            return [f.properties[NAME] for f in await SearchService().search(conn, [layer], q)]

    return asyncio.run(work())


def test_a_load_indexes_the_text_fields_with_trigrams(layer: Layer, conn: psycopg.Connection) -> None:
    (definition,) = conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'layer_data' AND tablename = %s AND indexdef LIKE %s",
        (LAYER, "%gin_trgm_ops%"),
    ).fetchone() or ("",)
    assert NAME.replace('"', '""') in definition and ADDRESS in definition
    assert COUNT not in definition  # a number is not searched text


def test_the_search_uses_the_index(layer: Layer, conn: psycopg.Connection) -> None:
    params = {"lim": 10, "text": "libary", "start": "x%", "word": "% x%", "w0": "%library%", "lon": None, "lat": None}
    for words in (1, None):
        with conn.transaction():
            conn.execute("SET LOCAL enable_seqscan = off")
            plan = conn.execute(b"EXPLAIN " + search_sql([layer], words, near=False), params).fetchall()
        assert "search_trgm" in "\n".join(row[0] for row in plan), plan


def test_words_anywhere_best_first_and_nearest_first(layer: Layer, database_url: str) -> None:
    # Starting with the text first, then a word starting with it, then inside a word; shorter texts first.
    assert run(database_url, layer, "bow") == ["Bow Valley Arena", "Bowness Public Library", "Rainbow Park"]
    assert run(database_url, layer, "library bowness") == ["Bowness Public Library"]
    assert run(database_url, layer, "centre ave ne") == ["Bridgeland Library"]  # the address
    nearest = run(database_url, layer, "LIBRARY", point=(-114.0, 51.08))
    assert nearest == ["Bridgeland Library", "Bowness Public Library"]
    assert run(database_url, layer, "brigeland") == ["Bridgeland Library"]  # a spelling slip
    assert run(database_url, layer, "50%") == []  # a literal per cent sign, and the field's name is not its text


@pytest.fixture
def plain_database(database_url: str, conn: psycopg.Connection) -> Iterator[str]:
    """A scratch database of the test cluster, migrated, dropped afterwards."""
    from layers.catalogue.migrate import upgrade

    conn.execute("CREATE DATABASE search_plain")
    url = database_url.replace("/geoserver?", "/search_plain?", 1)
    try:
        upgrade(url)
        yield url
    finally:
        conn.execute("DROP DATABASE search_plain WITH (FORCE)")


def test_without_pg_trgm_the_search_still_matches_words(plain_database: str, tmp_path: Path) -> None:
    path = write_geojson(tmp_path / "p.geojson", [(row, point(-114.2, 51.08)) for row in ROWS[:2]])
    load_file(plain_database, manifest("plain", [NAME, ADDRESS], searchable_fields=[NAME]), path)
    with psycopg.connect(plain_database, autocommit=True) as admin:
        admin.execute("DROP EXTENSION pg_trgm CASCADE")  # a database where it could not be created
    layer = fresh_registry(plain_database).resolve("plain", ANONYMOUS)
    assert run(plain_database, layer, "bridgeland") == ["Bridgeland Library"]
    assert run(plain_database, layer, "brigeland") == []  # no spelling pass, and no error
    # A role that may not create extensions: the load would go on, without the index.
    with psycopg.connect(plain_database, autocommit=True) as admin:
        admin.execute("CREATE ROLE search_no_extensions")
        try:
            with psycopg.connect(plain_database) as plain:
                plain.execute("SET ROLE search_no_extensions")
                assert ensure_trigram(plain) is False
                assert plain.execute("SELECT 1").fetchone() == (1,)  # the transaction is still usable
        finally:
            admin.execute("DROP ROLE search_no_extensions")


def test_a_searchable_field_must_be_public() -> None:
    with pytest.raises(ValidationError, match="searchable_fields must also be listed in public_fields"):
        manifest("bad search", ["name"], searchable_fields=["secret"])
