"""Near me from memory answers exactly what the database answers: the same features in the same order, the same
geodesic distances and bearings, the same JSON, for nearest-N, radius, category and open-now searches, exact
distance ties and cursors; and an index is never used once a notice about its layer was heard."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from layers.catalogue.registry import Registry
from layers.catalogue.visibility import ANONYMOUS
from layers.ingest.load import load_file
from layers.limits import MAX_NEARBY_LAYERS
from layers.queries import nearby_memory
from layers.queries.nearby import Hit, NearbyQuery, NearbyService, Page
from layers.queries.nearby_memory import MAX_POINTS, eligible
from tests.layers.test_nearby import AT
from tests.support.layers import drop_layer, manifest, point, write_geojson

pytestmark = pytest.mark.usefixtures("demo_city")
SPOTS = "memory ties"
PLACES = [(-114.012345, 51.012345), (-114.023456, 51.034567), (-113.98765, 51.0), (-114.0, 51.05), (-113.95, 51.1),
          (-114.05, 50.95)]  # fmt: skip
CITY = (-114.32, 50.84, -113.86, 51.21)


@pytest.fixture(scope="module")
def spots(database_url: str, demo_city: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Points at six places, 40 at each (exact distance ties, more than a first take), with a private field."""
    features: list[tuple[dict[str, Any], dict[str, Any] | None]] = [
        ({"name": f"spot {i}", "secret": "CANARY-MEMORY"}, point(*PLACES[i % len(PLACES)])) for i in range(240)
    ]
    path = write_geojson(Path(tmp_path_factory.mktemp("spots")) / "spots.geojson", features)
    load_file(database_url, manifest(SPOTS, ["name"]), path)
    yield SPOTS
    drop_layer(database_url, SPOTS)


def _compare(database_url: str, names: list[str], queries: list[NearbyQuery]) -> list[tuple[Page, Page]]:
    """Each query through the database and from memory (every layer's index read first)."""

    async def main() -> list[tuple[Page, Page]]:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            registry = await Registry.load(conn)
            chosen = registry.resolve_many(names, ANONYMOUS, cap=MAX_NEARBY_LAYERS, parameter="layers")
            database, memory = NearbyService(), NearbyService()
            memory.memory.listening(True)
            assert memory.memory.current(chosen) is None  # not read yet: the database answers
            for layer in chosen:
                await memory.memory.build(conn, layer)
            pairs = []
            for q in queries:
                assert memory.memory.current(chosen) is not None  # so the answer below comes from memory
                first = await database.search(conn, chosen, q)
                pairs.append((first, await memory.search(conn, chosen, q)))
                if not q.categories and not q.open_now:  # the route's way: no database connection at all
                    direct = memory.search_in_memory(chosen, q)
                    assert direct is not None
                    pairs.append((first, direct))
                if first.next_key is not None:  # the next page, with the database's cursor, both ways
                    after = q.after_key(first.next_key)
                    pairs.append((await database.search(conn, chosen, after), await memory.search(conn, chosen, after)))
            return pairs

    return asyncio.run(main())


def _same_hit(a: Hit, b: Hit) -> None:
    assert (a.layer, a.id, a.id_json, a.geometry, a.properties_json) == (
        b.layer,
        b.id,
        b.id_json,
        b.geometry,
        b.properties_json,
    )
    assert (a.has_hours, a.hours, a.happening_now) == (b.has_hours, b.hours, b.happening_now)
    assert a.distance_m == b.distance_m, (a, b)  # bit for bit: cursors compare them exactly
    assert "CANARY-MEMORY" not in b.properties_json
    if a.bearing_deg is None or b.bearing_deg is None:
        assert a.bearing_deg == b.bearing_deg
    else:  # rounded to 0.1 from values a rounding step apart at most
        assert min(abs(a.bearing_deg - b.bearing_deg), 360 - abs(a.bearing_deg - b.bearing_deg)) <= 0.1 + 1e-9


def _same(pairs: list[tuple[Page, Page]]) -> None:
    for database, memory in pairs:
        assert [(h.layer, h.id) for h in database.hits] == [(h.layer, h.id) for h in memory.hits]
        for a, b in zip(database.hits, memory.hits, strict=True):
            _same_hit(a, b)
        assert database.next_key == memory.next_key


def _query(lon: float, lat: float, **options: Any) -> NearbyQuery:
    fields = {"radius_m": None, "categories": (), "open_now": False, "at": AT, "limit": 10} | options
    return NearbyQuery(lon, lat, **fields)


def test_memory_answers_as_the_database_in_the_city_and_far_from_it(database_url: str, spots: str) -> None:
    rng = random.Random(11)
    x0, y0, x1, y1 = CITY
    queries = []
    for n in range(120):
        lon, lat = x0 + rng.random() * (x1 - x0), y0 + rng.random() * (y1 - y0)
        options: dict[str, Any] = {"limit": rng.choice([1, 3, 10, 40])}
        if n % 3 == 1:
            options["radius_m"] = rng.choice([150.0, 800.0, 2500.0])
        queries.append(_query(lon, lat, **options))
    # Far away, where the nearest are hundreds or thousands of kilometres off (the search widens until exact).
    queries += [
        _query(lon, lat, limit=5) for lon, lat in ((-100.0, 40.0), (10.0, 60.0), (179.9, -60.0), (-114.0, 89.5))
    ]
    _same(_compare(database_url, ["facilities", spots], queries))


def test_memory_answers_as_the_database_for_ties_categories_and_open_now(database_url: str, spots: str) -> None:
    rng = random.Random(5)
    x0, y0, x1, y1 = CITY
    # At each place itself (40 features 0 m away, ties broken by id) and near it.
    queries = [_query(lon, lat, limit=limit) for lon, lat in PLACES for limit in (3, 10, 50)]
    queries += [_query(lon + 0.0001, lat, limit=7) for lon, lat in PLACES]
    for _ in range(40):
        lon, lat = x0 + rng.random() * (x1 - x0), y0 + rng.random() * (y1 - y0)
        queries.append(_query(lon, lat, categories=("library", "fire_station"), limit=4))
        queries.append(_query(lon, lat, open_now=True, limit=6))
    filtered = queries[len(PLACES) * 4 :]
    _same(_compare(database_url, ["facilities"], filtered))
    _same(_compare(database_url, [spots], queries[: len(PLACES) * 4]))


def test_an_index_is_not_used_once_a_notice_about_its_layer_is_heard(database_url: str) -> None:
    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            registry = await Registry.load(conn)
            layer = registry.resolve("facilities", ANONYMOUS)
            service = NearbyService()
            service.memory.listening(True)
            await service.memory.build(conn, layer)
            assert service.memory.current([layer]) is not None
            service.memory.changed(layer.id)  # an edit of the layer
            assert service.memory.current([layer]) is None
            await service.memory.build(conn, layer)
            assert service.memory.current([layer]) is not None
            service.memory.changed(None)  # notices may have been missed
            assert service.memory.current([layer]) is None
            await service.memory.build(conn, layer)
            assert service.memory.current([dataclasses.replace(layer, version=layer.version + 1)]) is None
            service.memory.listening(False)  # the watcher lost the database
            assert service.memory.current([layer]) is None
            parcels = registry.resolve("parcels", ANONYMOUS)
            assert not eligible(parcels)
            assert not eligible(dataclasses.replace(layer, feature_count=MAX_POINTS + 1))
            assert not eligible(dataclasses.replace(layer, count_kept=False))  # a view: no notices would come
            text_ids = [
                dataclasses.replace(f, data_type="text") if f.name == layer.id_column else f for f in layer.fields
            ]
            assert not eligible(dataclasses.replace(layer, fields=tuple(text_ids)))  # ties go by collation there

    asyncio.run(main())


def test_every_page_at_a_place_of_forty_ties_comes_out_once_and_in_order(database_url: str, spots: str) -> None:
    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            chosen = [(await Registry.load(conn)).resolve(spots, ANONYMOUS)]
            database, memory = NearbyService(), NearbyService()
            memory.memory.listening(True)
            await memory.memory.build(conn, chosen[0])
            for lon, lat in PLACES[:2]:
                seen: dict[str, list[tuple[Any, float]]] = {"database": [], "memory": []}
                for name, service in (("database", database), ("memory", memory)):
                    q = _query(lon, lat, limit=9)
                    while True:
                        page = await service.search(conn, chosen, q)
                        seen[name] += [(h.id, h.distance_m) for h in page.hits]
                        if page.next_key is None:
                            break
                        q = q.after_key(page.next_key)
                assert seen["memory"] == seen["database"]
                assert len({i for i, _ in seen["memory"]}) == 240

    asyncio.run(main())


def test_a_search_too_long_for_memory_is_left_to_the_database(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nearby_memory, "MAX_TAKE", 40)

    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            chosen = [(await Registry.load(conn)).resolve("facilities", ANONYMOUS)]
            service = NearbyService()
            service.memory.listening(True)
            await service.memory.build(conn, chosen[0])
            near, far = _query(-114.07, 51.05, limit=5), _query(10.0, 60.0, limit=5)
            assert service.search_in_memory(chosen, near) is not None
            assert service.search_in_memory(chosen, far) is None  # would measure more than 40 points
            answer = await service.search(conn, chosen, far)  # from the database, then
            assert answer == await NearbyService().search(conn, chosen, far)

    asyncio.run(main())


def test_a_table_with_anything_but_points_or_whose_changes_go_unheard_is_not_held(database_url: str) -> None:
    from layers.catalogue.records import Field
    from layers.ingest.register import install_change_triggers
    from layers.queries.nearby_memory import load

    with psycopg.connect(database_url, autocommit=True) as setup:
        setup.execute("DROP TABLE IF EXISTS public.memory_mixed")
        setup.execute(
            "CREATE TABLE public.memory_mixed AS SELECT g AS id, ST_SetSRID(CASE WHEN g = 3 THEN "
            "ST_Multi(ST_MakePoint(-114, 51)) ELSE ST_MakePoint(-114 + g / 100.0, 51) END, 4326) AS geom "
            "FROM generate_series(1, 4) AS g"
        )

    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            facilities = (await Registry.load(conn)).resolve("facilities", ANONYMOUS)
            layer = dataclasses.replace(
                facilities, id="memory mixed", table_schema="public", table_name="memory_mixed", id_column="id",
                geometry_column="geom", fields=(Field("id", "bigint"),), category_field=None, opening_hours_field=None,
            )  # fmt: skip
            assert await load(conn, layer) is None  # no trigger announces its changes
            with psycopg.connect(database_url, autocommit=True) as sync:
                install_change_triggers(sync, layer.table, "another layer", "geom")
            assert await load(conn, layer) is None  # its changes are announced as another layer's
            with psycopg.connect(database_url, autocommit=True) as sync:
                install_change_triggers(sync, layer.table, layer.id, "geom")
            assert await load(conn, layer) is None  # one row is a MultiPoint (and reading it does not fail)
            await conn.execute("DELETE FROM public.memory_mixed WHERE id = 3")
            index = await load(conn, layer)
            assert index is not None and sorted(index.ids) == [1, 2, 4]

    try:
        asyncio.run(main())
    finally:
        with psycopg.connect(database_url, autocommit=True) as cleanup:
            cleanup.execute("DROP TABLE public.memory_mixed")
