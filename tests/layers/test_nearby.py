"""Near-me searches against the demo City: geodesic order, radius edges, events and opening hours at chosen instants,
paging without duplicates, private fields, what's here, and cursors."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import shapely
from pyproj import Geod

from layers.catalogue.registry import Registry
from layers.catalogue.visibility import ANONYMOUS, Principal
from layers.errors import InvalidParameter, LayerNotFound
from layers.ingest.in_place import publish_table
from layers.ingest.load import load_file
from layers.limits import MAX_NEARBY_LAYERS
from layers.queries import hours
from layers.queries.nearby import Here, NearbyQuery, NearbyService, Page
from tests.support.layers import drop_layer, manifest, point, write_geojson

GEOD = Geod(ellps="WGS84")
AT = datetime(2026, 7, 15, 18, 0, tzinfo=UTC)  # the demo City's "now" (DEMO_NOW)
TIES_LAYER = 'Near "Me" ties; --x'
TIES_FIELDS = ['odd "name"', "per%cent", "Mixed Case"]
TIES_AT = (-113.5, 51.5)  # outside the demo City, so no demo feature is as near
pytestmark = pytest.mark.usefixtures("demo_city")


@pytest.fixture(scope="module")
def ties_layer(database_url: str, demo_city: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Four features at one spot (distance ties) and three further off, with hostile field names and a private one."""
    spots = [TIES_AT] * 4 + [(TIES_AT[0] + 0.001 * k, TIES_AT[1]) for k in (1, 2, 3)]
    features: list[tuple[dict[str, Any], dict[str, Any] | None]] = [
        ({'odd "name"': f"tie {i}", "per%cent": i, "Mixed Case": "x", "secret": "CANARY-NEARBY"}, point(*spot))
        for i, spot in enumerate(spots, start=1)
    ]
    path = write_geojson(tmp_path_factory.mktemp("ties") / "ties.geojson", features)
    load_file(database_url, manifest(TIES_LAYER, TIES_FIELDS), path)
    group = manifest("nearby group overlay", ["name"], visibility="group:nearby-testers")
    load_file(database_url, group, write_geojson(path.with_name("g.geojson"), [({"name": "g"}, point(*TIES_AT))]))
    yield TIES_LAYER
    drop_layer(database_url, TIES_LAYER)
    drop_layer(database_url, "nearby group overlay")


def run(database_url: str, work: Any) -> Any:
    """Run `work(conn, registry)` on a fresh async connection."""

    async def main() -> Any:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            return await work(conn, await Registry.load(conn))

    return asyncio.run(main())


def search(
    database_url: str,
    names: list[str] | None,
    lon: float,
    lat: float,
    *,
    service: NearbyService | None = None,
    **options: Any,
) -> Page:
    """One search, with NearbyQuery's fields as keyword options."""
    svc = service or NearbyService()
    fields = {"radius_m": None, "categories": (), "open_now": False, "at": AT, "limit": 10} | options
    q = NearbyQuery(lon, lat, **fields)

    async def work(conn: psycopg.AsyncConnection, registry: Registry) -> Page:
        chosen = (
            registry.visible(ANONYMOUS)
            if names is None
            else registry.resolve_many(names, ANONYMOUS, cap=MAX_NEARBY_LAYERS, parameter="layers")
        )
        return await svc.search(conn, chosen, q)

    result: Page = run(database_url, work)
    return result


def all_pages(database_url: str, names: list[str], lon: float, lat: float, **options: Any) -> list[tuple[Any, ...]]:
    """Every hit, page after page, as (layer, id, distance)."""
    svc, after, seen = NearbyService(), None, []
    for _ in range(200):
        page = search(database_url, names, lon, lat, service=svc, after=after, **options)
        seen += [(h.layer, h.id, h.distance_m) for h in page.hits]
        if page.next_key is None:
            return seen
        after = page.next_key
    raise AssertionError("paging did not end")


def facilities(conn: psycopg.Connection) -> list[tuple[int, float, float, str, str]]:
    """(id, lon, lat, category, opening hours) of every demo facility."""
    rows = conn.execute(
        "SELECT facility_id, ST_X(geom), ST_Y(geom), category, opening_hours FROM layer_data.facilities"
    ).fetchall()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def geodesic_m(lon: float, lat: float, lon2: float, lat2: float) -> float:
    return float(GEOD.inv(lon, lat, lon2, lat2)[2])


def test_nearest_are_ranked_geodesically_where_degree_order_differs(
    database_url: str, conn: psycopg.Connection
) -> None:
    rows = facilities(conn)
    rng = random.Random(7)
    differing = 0
    for _ in range(25):
        lon, lat = rng.uniform(-114.25, -113.95), rng.uniform(50.9, 51.15)
        by_metres = sorted(rows, key=lambda r: (geodesic_m(lon, lat, r[1], r[2]), r[0]))[:10]
        by_degrees = sorted(rows, key=lambda r: (r[1] - lon) ** 2 + (r[2] - lat) ** 2)[:10]
        differing += [r[0] for r in by_metres] != [r[0] for r in by_degrees]
        page = search(database_url, ["facilities"], lon, lat)
        assert [h.id for h in page.hits] == [r[0] for r in by_metres]
        for hit, row in zip(page.hits, by_metres, strict=True):
            assert hit.distance_m == pytest.approx(geodesic_m(lon, lat, row[1], row[2]), abs=0.01)
            bearing = GEOD.inv(lon, lat, row[1], row[2])[0] % 360
            assert hit.bearing_deg == pytest.approx(bearing, abs=0.11)
    assert differing >= 5, "the sample should include points where degree order is wrong"


@pytest.mark.parametrize("radius_m", [250.0, 1_500.0, 8_000.0])
def test_a_radius_finds_exactly_the_features_within_it(
    database_url: str, conn: psycopg.Connection, radius_m: float
) -> None:
    rows = facilities(conn)
    rng = random.Random(int(radius_m))
    for _ in range(6):
        lon, lat = rng.uniform(-114.25, -113.95), rng.uniform(50.9, 51.15)
        page = search(database_url, ["facilities"], lon, lat, radius_m=radius_m, limit=10_000)
        found = {h.id for h in page.hits}
        distances = {r[0]: geodesic_m(lon, lat, r[1], r[2]) for r in rows}
        # A box too narrow in longitude would lose features due east or west: compare with all of them.
        assert {i for i, d in distances.items() if d <= radius_m - 0.01} <= found
        assert found <= {i for i, d in distances.items() if d <= radius_m + 0.01}
        assert all(h.distance_m <= radius_m for h in page.hits)


def test_the_radius_edge_is_inclusive(database_url: str) -> None:
    lon, lat = -114.07, 51.05
    third = search(database_url, ["facilities"], lon, lat, limit=3).hits[2]
    at_edge = search(database_url, ["facilities"], lon, lat, radius_m=third.distance_m, limit=100)
    assert [h.id for h in at_edge.hits][-1] == third.id and len(at_edge.hits) == 3
    inside = search(database_url, ["facilities"], lon, lat, radius_m=third.distance_m - 0.001, limit=100)
    assert third.id not in {h.id for h in inside.hits} and len(inside.hits) == 2


def test_paging_returns_every_feature_once_in_order(database_url: str) -> None:
    names = ["events", "facilities"]
    pages = all_pages(database_url, names, -114.07, 51.05, radius_m=6_000.0, limit=7)
    whole = search(database_url, names, -114.07, 51.05, radius_m=6_000.0, limit=10_000)
    assert pages == [(h.layer, h.id, h.distance_m) for h in whole.hits]
    assert len(set(pages)) == len(pages) > 20
    assert pages == sorted(pages, key=lambda p: (p[2], p[0], p[1]))
    nearest = all_pages(database_url, names, -114.07, 51.05, limit=9)  # KNN pages run to the end of both layers
    assert len(nearest) == len(set(nearest)) and {p[0] for p in nearest} == set(names)


def test_paging_through_exact_distance_ties_goes_by_layer_then_id(database_url: str, ties_layer: str) -> None:
    pages = all_pages(database_url, [ties_layer], *TIES_AT, limit=1)
    assert len(pages) == 7
    assert [p[1] for p in pages[:4]] == sorted(p[1] for p in pages[:4])
    assert len({p[2] for p in pages[:4]}) == 1 and pages[0][2] == 0.0
    both = all_pages(database_url, [ties_layer, "wards", "communities"], -114.07, 51.05, limit=1, radius_m=1.0)
    assert [p[0] for p in both] == ["communities", "wards"]  # both contain the point: distance 0, ties by layer


def test_hostile_names_are_quoted_and_private_fields_never_selected(database_url: str, ties_layer: str) -> None:
    svc = NearbyService()
    page = search(database_url, [ties_layer], *TIES_AT, service=svc, limit=7)
    assert len(page.hits) == 7
    assert all(set(h.properties) == set(TIES_FIELDS) for h in page.hits)
    assert page.hits[0].properties['odd "name"'] == "tie 1" and page.hits[0].properties["per%cent"] == 1
    assert "CANARY-NEARBY" not in repr(page.hits)
    assert all(b"secret" not in text for text in svc._statements.texts())


def test_ended_events_are_left_out_and_current_ones_marked(database_url: str, conn: psycopg.Connection) -> None:
    event_id, lon, lat, starts_at, ends_at = conn.execute(
        "SELECT event_id, ST_X(geom), ST_Y(geom), starts_at, ends_at FROM layer_data.events "
        "WHERE starts_at <= %s AND ends_at > %s ORDER BY event_id LIMIT 1",
        [AT, AT],
    ).fetchone()  # type: ignore[misc]

    def found(at: datetime) -> dict[Any, bool | None]:
        page = search(database_url, ["events"], lon, lat, radius_m=1.0, at=at)
        return {h.id: h.happening_now for h in page.hits}

    assert found(starts_at - timedelta(seconds=1))[event_id] is False  # upcoming: listed, not happening
    assert found(starts_at)[event_id] is True
    assert found(ends_at - timedelta(seconds=1))[event_id] is True
    assert event_id not in found(ends_at)  # ended: the end is exclusive
    page = search(database_url, ["events"], -114.07, 51.05, limit=100, at=AT)
    ends: dict[int, datetime] = dict(conn.execute("SELECT event_id, ends_at FROM layer_data.events").fetchall())
    assert page.hits and all(ends[h.id] > AT for h in page.hits)


INSTANTS = [
    datetime(2026, 7, 15, 15, 30, tzinfo=UTC),  # Wednesday 09:30 MDT: some libraries open, some not yet
    datetime(2026, 3, 8, 8, 59, tzinfo=UTC),  # 01:59 MST, a minute before spring forward: Saturday halls open
    datetime(2026, 3, 8, 9, 0, tzinfo=UTC),  # 03:00 MDT: the hall's 02:00 never came; closed
    datetime(2026, 11, 1, 8, 30, tzinfo=UTC),  # 01:30 MST, the repeated hour: halls still open until 02:00 MST
    datetime(2026, 11, 1, 7, 45, tzinfo=UTC),  # 01:45 MDT: transit stops closed at the first 01:30
    datetime(2026, 12, 25, 18, 0, tzinfo=UTC),  # Christmas, a holiday closure
]


@pytest.mark.parametrize("at", INSTANTS, ids=[i.isoformat() for i in INSTANTS])
def test_open_now_keeps_exactly_the_open_facilities(database_url: str, conn: psycopg.Connection, at: datetime) -> None:
    rows = facilities(conn)
    expected = set()
    for fid, _, _, _, text in rows:
        parsed = hours.parse_cached(text)
        if parsed is not None and hours.open_now(parsed, at):
            expected.add(fid)
    page = search(database_url, ["facilities"], -114.07, 51.05, open_now=True, at=at, limit=10_000)
    assert {h.id for h in page.hits} == expected
    assert all(h.hours is not None and h.hours.open_now for h in page.hits)
    halls = {r[0] for r in rows if r[3] == "community_hall"}
    if at in (INSTANTS[1], INSTANTS[3]):
        assert halls <= expected
    if at == INSTANTS[2]:
        assert not halls & expected
    if at == INSTANTS[4]:
        assert not {r[0] for r in rows if r[3] == "transit_stop"} & expected


def test_categories_filter_and_unknown_ones_are_refused(database_url: str) -> None:
    page = search(database_url, ["facilities", "events"], -114.07, 51.05, categories=("library", "market"), limit=50)
    assert {h.properties["category"] for h in page.hits} == {"library", "market"}
    with pytest.raises(InvalidParameter) as unknown:
        search(database_url, ["facilities"], -114.07, 51.05, categories=("library", "casino"))
    assert unknown.value.parameter == "category" and "casino" in unknown.value.message
    with pytest.raises(InvalidParameter) as none:
        search(database_url, ["wards"], -114.07, 51.05, categories=("library",))
    assert none.value.parameter == "category"
    with pytest.raises(InvalidParameter) as no_hours:
        search(database_url, ["events"], -114.07, 51.05, open_now=True)
    assert no_hours.value.parameter == "open_now"


def test_unknown_and_invisible_layers_are_refused_alike(database_url: str, ties_layer: str) -> None:
    async def work(conn: psycopg.AsyncConnection, registry: Registry) -> list[str]:
        messages = []
        for name in ("nearby group overlay", "no such layer"):
            with pytest.raises(LayerNotFound) as refused:
                registry.resolve_many([name], ANONYMOUS, cap=MAX_NEARBY_LAYERS, parameter="layers")
            messages.append(refused.value.message.replace(name, "X"))
        member = Principal(subject="m", roles={"nearby-testers": "viewer"})
        found = registry.resolve_many(["nearby group overlay"], member, cap=MAX_NEARBY_LAYERS, parameter="layers")
        assert [layer.id for layer in found]
        return messages

    hidden, missing = run(database_url, work)
    assert hidden == missing


def test_here_finds_the_containing_boundaries_and_the_nearest_serving_facility(
    database_url: str, conn: psycopg.Connection
) -> None:
    polygons = {
        (layer, ident): shapely.from_wkb(bytes(wkb))
        for layer, table, key in (("wards", "wards", "ward_id"), ("communities", "communities", "community_code"))
        for ident, wkb in conn.execute(f"SELECT {key}, ST_AsBinary(geom) FROM layer_data.{table}").fetchall()  # noqa: S608
    }
    rows = facilities(conn)
    rng = random.Random(3)
    for _ in range(5):
        lon, lat = rng.uniform(-114.2, -113.95), rng.uniform(50.9, 51.15)

        async def work(conn: psycopg.AsyncConnection, registry: Registry, lon: float = lon, lat: float = lat) -> Here:
            return await NearbyService().here(conn, registry.visible(ANONYMOUS), lon, lat, AT)

        found: Here = run(database_url, work)
        inside = {key for key, poly in polygons.items() if poly.intersects(shapely.Point(lon, lat))}
        assert {(b.layer, b.id) for b in found.boundaries} == inside
        assert {b.layer for b in found.boundaries} == {"wards", "communities"}
        assert set(found.serving) == {"fire_station", "library", "recreation_centre"}
        for category, hit in found.serving.items():
            mine = [r for r in rows if r[3] == category]
            nearest = min(mine, key=lambda r: geodesic_m(lon, lat, r[1], r[2]))
            assert hit.id == nearest[0] and hit.properties["category"] == category


def test_the_same_statement_is_reused_until_the_layer_changes(database_url: str, tmp_path: Path) -> None:
    svc = NearbyService()
    for lon in (-114.1, -114.0, -113.9):
        search(database_url, ["facilities"], lon, 51.05, service=svc)
    assert len(svc._statements) == 1
    try:
        path = write_geojson(tmp_path / "v.geojson", [({"name": "v1"}, point(-114.0, 51.0))])
        load_file(database_url, manifest("nearby versioned", ["name"]), path)
        first = search(database_url, ["nearby versioned"], -114.0, 51.0, service=svc).hits[0]
        assert first.properties == {"name": "v1"}
        path = write_geojson(tmp_path / "v.geojson", [({"name": "v2", "n": 2}, point(-114.0, 51.0))])
        load_file(database_url, manifest("nearby versioned", ["name", "n"]), path)
        hit = search(database_url, ["nearby versioned"], -114.0, 51.0, service=svc).hits[0]
        assert hit.properties == {"name": "v2", "n": 2}
        assert len(svc._statements) == 3
    finally:
        drop_layer(database_url, "nearby versioned")


def test_text_ids_tied_in_distance_page_in_one_order_whatever_the_collation(database_url: str) -> None:
    """A published table whose text ids sort differently in its collation (ICU English: a < B < c < D) than
    byte by byte (B < D < a < c): every page ends where the next one starts, each feature once, in one order.
    Numeric ids tied in distance page by value (10 after 9), as numbers."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_collation WHERE collname = 'en-US-x-icu'").fetchone() is None:
            pytest.skip("this PostgreSQL has no ICU collations")
        conn.execute(
            "DROP TABLE IF EXISTS public.nearby_collated, public.nearby_numeric; "
            "CREATE TABLE public.nearby_collated AS "
            'SELECT id COLLATE "en-US-x-icu" AS id, ST_SetSRID(ST_MakePoint(-113.6, 51.6), 4326) AS geom '
            "FROM unnest(ARRAY['a', 'B', 'c', 'D', 'é']) AS id; "
            "CREATE TABLE public.nearby_numeric AS SELECT id::numeric AS id, "
            "ST_SetSRID(ST_MakePoint(-113.6, 51.6), 4326) AS geom FROM unnest(ARRAY[9, 10, 100, 2.5]) AS id"
        )
    try:
        for name, table in (("nearby collated", "nearby_collated"), ("nearby numeric", "nearby_numeric")):
            publish_table(database_url, manifest(name, ["id"], id_field="id", source={"table": f"public.{table}"}))
        for limit in (1, 2, 3):
            pages = all_pages(database_url, ["nearby collated"], -113.6, 51.6, limit=limit)
            assert [p[1] for p in pages] == ["B", "D", "a", "c", "é"], limit
            pages = all_pages(database_url, ["nearby numeric"], -113.6, 51.6, limit=limit)
            assert [float(p[1]) for p in pages] == [2.5, 9, 10, 100], limit
    finally:
        for name in ("nearby collated", "nearby numeric"):
            drop_layer(database_url, name)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS public.nearby_collated, public.nearby_numeric")
