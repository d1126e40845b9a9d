"""Items paging: keyset cursors behind next links, offsets that skip through the id index, counts that need no scan."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from fastapi.testclient import TestClient

from layers.catalogue.visibility import ANONYMOUS
from layers.ingest.in_place import publish_table
from tests.support.layers import drop_layer, manifest

TABLE, VIEW = "paged in place", "paged view"


def _wait_for(client: TestClient, layer_id: str, present: bool = True) -> None:
    state = client.app.state.geoserver  # type: ignore[attr-defined]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if (layer_id in {x.id for x in state.registry.visible(ANONYMOUS)}) == present:
            return
        time.sleep(0.05)
    raise AssertionError(f"the app did not pick up {layer_id!r}")


@pytest.fixture(scope="module")
def paged(client: TestClient, database_url: str) -> Iterator[TestClient]:
    """A 500-row table published in place (its triggers keep the count) and a view of it (no triggers)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS public.paged CASCADE")
        conn.execute(
            "CREATE TABLE public.paged AS SELECT i * 7 % 1000 AS id, 'n' || i AS name, "
            "ST_SetSRID(ST_MakePoint(-114 + i / 10000.0, 51), 4326) AS geom FROM generate_series(1, 500) AS i"
        )
        conn.execute("ALTER TABLE public.paged ADD PRIMARY KEY (id)")
        conn.execute("CREATE VIEW public.paged_view AS SELECT * FROM public.paged")
    publish_table(database_url, manifest(TABLE, ["id", "name"], id_field="id", source={"table": "public.paged"}))
    publish_table(database_url, manifest(VIEW, ["id", "name"], id_field="id", source={"table": "public.paged_view"}))
    _wait_for(client, TABLE)
    _wait_for(client, VIEW)
    yield client
    drop_layer(database_url, VIEW)
    drop_layer(database_url, TABLE)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE public.paged CASCADE")


def _ids(doc: dict[str, Any]) -> list[int]:
    return [f["id"] for f in doc["features"]]


def _next(doc: dict[str, Any]) -> str | None:
    hrefs = [x["href"] for x in doc["links"] if x["rel"] == "next" and x["type"] == "application/geo+json"]
    return hrefs[0] if hrefs else None


def test_next_links_carry_a_keyset_cursor_that_gives_the_offset_page(paged: TestClient, database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        expected = [r[0] for r in conn.execute("SELECT id FROM public.paged ORDER BY id")]
    first = paged.get(f"/collections/{TABLE}/items?limit=40").json()
    href = _next(first)
    assert href is not None
    query = parse_qs(urlsplit(href).query)
    assert "cursor" in query and "offset" not in query
    second = paged.get(href).json()
    assert _ids(first) + _ids(second) == expected[:80]
    by_offset = paged.get(f"/collections/{TABLE}/items?limit=40&offset=40").json()
    assert _ids(by_offset) == _ids(second) and second["numberMatched"] == 500
    # The cursor's page knows where it is: its prev link goes back to offset 0.
    prev = [x["href"] for x in second["links"] if x["rel"] == "prev" and x["type"] == "application/geo+json"]
    assert parse_qs(urlsplit(prev[0]).query)["offset"] == ["0"]


def test_a_cursor_is_refused_with_an_offset_when_altered_or_for_another_search(paged: TestClient) -> None:
    href = _next(paged.get(f"/collections/{TABLE}/items?limit=10&name=n5").json())
    assert href is None  # one match, no next page
    href = _next(paged.get(f"/collections/{TABLE}/items?limit=10").json())
    assert href is not None
    cursor = parse_qs(urlsplit(href).query)["cursor"][0]
    base = f"/collections/{TABLE}/items?limit=10&cursor="
    for url in (
        base + cursor + "&offset=10",  # both ways at once
        base + cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB"),  # altered
        base + cursor + "&name=n5",  # another search
        f"/collections/{VIEW}/items?limit=10&cursor={cursor}",  # another collection
    ):
        response = paged.get(url)
        assert response.status_code == 400 and response.json()["parameter"] == "cursor", url


def test_an_offset_skips_to_the_right_rows_on_tables_and_views(paged: TestClient, database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        expected = [r[0] for r in conn.execute("SELECT id FROM public.paged ORDER BY id")]
    # The table's primary key lets offsets skip through its index; the view has none, so it takes plain OFFSET.
    indexed = {x.id: x.id_indexed for x in paged.app.state.geoserver.registry.all_layers()}  # type: ignore[attr-defined]
    assert indexed[TABLE] and not indexed[VIEW]
    for layer in (TABLE, VIEW):
        for offset in (0, 1, 137, 499):
            doc = paged.get(f"/collections/{layer}/items?limit=7&offset={offset}").json()
            assert _ids(doc) == expected[offset : offset + 7] and doc["numberMatched"] == 500
        past = paged.get(f"/collections/{layer}/items?limit=7&offset=900").json()
        assert past["features"] == [] and past["numberMatched"] == 500


def test_a_table_in_place_counts_from_the_catalogue_a_view_from_its_rows(paged: TestClient, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO public.paged VALUES (5001, 'new', ST_SetSRID(ST_MakePoint(-114, 51), 4326))")
        kept = conn.execute("SELECT feature_count FROM geoserver.layers WHERE id = %s", [TABLE]).fetchone()
        assert kept == (501,)  # the insert trigger followed the edit
        # Behind the triggers' back, the catalogue's number is what a table's page reports (no count(*) of rows),
        # while the view, which has no triggers, is counted.
        conn.execute("UPDATE geoserver.layers SET feature_count = 12345 WHERE id = %s", [TABLE])
        try:
            assert paged.get(f"/collections/{TABLE}/items?limit=1").json()["numberMatched"] == 12345
            assert paged.get(f"/collections/{VIEW}/items?limit=1").json()["numberMatched"] == 501
            assert paged.get(f"/collections/{TABLE}/items?limit=1&name=new").json()["numberMatched"] == 1
        finally:
            conn.execute("DELETE FROM public.paged WHERE id = 5001")
            conn.execute("UPDATE geoserver.layers SET feature_count = 500 WHERE id = %s", [TABLE])
