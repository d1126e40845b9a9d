"""Items queries against a real PostGIS: parameters checked before SQL, exact counts, CRS, near/radius, streaming."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from pyproj import Transformer

from geoserver.params import parse_items
from layers.catalogue.records import Layer
from layers.catalogue.registry import Registry
from layers.catalogue.visibility import ANONYMOUS
from layers.errors import InvalidParameter
from layers.ingest.load import load_file
from layers.limits import MAX_LIMIT
from layers.queries import features
from layers.queries.crs import CRS84, EPSG_3776, EPSG_3857, EPSG_4326, parse_crs
from layers.queries.items import ItemsQuery
from layers.queries.times import parse_interval
from tests.support.layers import drop_layer, fresh_registry, manifest, point, write_geojson

T = TypeVar("T")
HOSTILE_ID = 'odd "layer" o\'k'
HOSTILE_FIELDS = ('Name "q"', "50% off", "MixedCase", "when")
HOSTILE_PRIVATE = "secret notes; DROP TABLE x --"
HOSTILE_CANARY = "CANARY-hostile-5b1e"


def load_hostile_layer(database_url: str, folder: Path) -> str:
    """A layer whose id and field names hold quotes, spaces, `%` and mixed case, with one private field (outside the
    demo City, so other tests never meet its points)."""
    start = datetime(2026, 7, 1, tzinfo=UTC)
    rows: list[tuple[dict[str, Any], dict[str, Any] | None]] = [
        (
            {
                'Name "q"': f"name '{i}' \"x\"",
                "50% off": i * 1.5,
                "MixedCase": f"M{i:02d}",
                "when": (start + timedelta(days=i)).isoformat(),
                HOSTILE_PRIVATE: f"{HOSTILE_CANARY}-{i}",
            },
            point(-113.5 + i / 1000, 53.5 + i / 1000),
        )
        for i in range(30)
    ]
    path = write_geojson(folder / "hostile.geojson", rows)
    load_file(
        database_url,
        manifest(HOSTILE_ID, list(HOSTILE_FIELDS), id_field="MixedCase", time_fields={"start": "when"}),
        path,
    )
    return HOSTILE_ID


def run(coroutine_fn: Callable[[psycopg.AsyncConnection[Any]], Coroutine[Any, Any, T]], url: str) -> T:
    """Run one coroutine on a fresh async connection."""

    async def main() -> T:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            return await coroutine_fn(conn)

    return asyncio.run(main())


@pytest.fixture(scope="module")
def registry(
    database_url: str, demo_city: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registry]:
    load_hostile_layer(database_url, tmp_path_factory.mktemp("hostile"))
    yield fresh_registry(database_url)
    drop_layer(database_url, HOSTILE_ID)


@pytest.fixture(scope="module")
def requests(registry: Registry) -> Layer:
    return registry.resolve("service_requests", ANONYMOUS)


def page(database_url: str, layer: Layer, **values: str) -> features.Page:
    query = parse_items(layer, dict(values))
    return run(lambda conn: features.fetch_page(conn, layer, query), database_url)


def db_count(database_url: str, where: str, params: list[Any] | None = None) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(f"SELECT count(*) FROM layer_data.service_requests WHERE {where}", params).fetchone()  # noqa: S608
    assert row is not None
    return int(row[0])


# -- parameters --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bbox",
    ["1,2,3", "1,2,3,4,5", "1,2,3,4,5,6,7", "-114,52,-113,51", "0,160,1,161", "nan,1,2,3", "inf,1,2,3", "a,b,c,d", ""],
)
def test_malformed_bboxes_are_refused_naming_bbox(requests: Layer, bbox: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_items(requests, {"bbox": bbox})
    assert caught.value.parameter == "bbox"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("limit", "0"), ("limit", "-1"), ("limit", "ten"), ("limit", "1e3"), ("offset", "-1"),
        ("offset", "99999999999"), ("datetime", "yesterday"), ("datetime", "2026-01-01/2025-01-01"),
        ("datetime", "2026-13-01T00:00:00Z"), ("datetime", "a/b/c"), ("crs", "EPSG:2263"), ("bbox-crs", "x"),
        ("sortby", "requester_contact"), ("sortby", "nope"), ("sortby", "distance"), ("sortby", ","),
        ("status", "open\x00"), ("near", "-114,51"), ("radius", "100"), ("near", "a,b"),
        ("filter-lang", "sql"),
    ],
)  # fmt: skip
def test_malformed_parameters_are_refused_naming_them(requests: Layer, name: str, value: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_items(requests, {name: value})
    assert caught.value.parameter in (name, "radius", "near")


@pytest.mark.parametrize("as_sortby", [False, True])
def test_private_and_unknown_parameters_are_refused_in_the_same_words(requests: Layer, as_sortby: bool) -> None:
    messages = []
    for name in ("requester_contact", "no_such_field"):
        with pytest.raises(InvalidParameter) as refused:
            parse_items(requests, {"sortby": name} if as_sortby else {name: "x"})
        messages.append(refused.value.message.replace(name, "N"))
    assert messages[0] == messages[1]


def test_limit_is_clamped_to_the_declared_maximum(requests: Layer) -> None:
    assert parse_items(requests, {"limit": str(MAX_LIMIT * 10)}).limit == MAX_LIMIT
    assert parse_items(requests, {}).limit == 10


def test_datetime_forms() -> None:
    instant = parse_interval("2026-07-15T18:00:00Z")
    assert instant.start == instant.end == datetime(2026, 7, 15, 18, tzinfo=UTC)
    open_start = parse_interval("../2026-07-15T18:00:00+02:00")
    assert open_start.start is None and open_start.end == datetime(2026, 7, 15, 16, tzinfo=UTC)
    assert parse_interval("2026-07-15T18:00:00Z/").end is None
    day = parse_interval("2026-07-15")
    assert day.start == datetime(2026, 7, 15, tzinfo=UTC) and day.end is not None and day.end.day == 15


def test_crs_names() -> None:
    assert parse_crs("http://www.opengis.net/def/crs/EPSG/0/3776", parameter="crs") is EPSG_3776
    assert parse_crs("[EPSG:3857]", parameter="crs") is EPSG_3857
    assert parse_crs(None, parameter="crs") is CRS84
    with pytest.raises(InvalidParameter):
        parse_crs("http://www.opengis.net/def/crs/EPSG/0/32611", parameter="crs")


# -- queries -----------------------------------------------------------------------------------------------
def test_unfiltered_pages_walk_the_layer_in_id_order(database_url: str, requests: Layer) -> None:
    first = page(database_url, requests, limit="7")
    second = page(database_url, requests, limit="7", offset="7")
    ids = [f.split('"id":', 1)[1].split(",", 1)[0] for f in first.features + second.features]
    assert ids == sorted(ids) and len(set(ids)) == 14
    assert first.number_matched == db_count(database_url, "true")


def test_bbox_count_and_members_match_the_database(database_url: str, requests: Layer) -> None:
    box = [-114.12, 51.00, -114.02, 51.08]
    result = page(database_url, requests, bbox=",".join(map(str, box)), limit="1000")
    expected = db_count(database_url, "ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))", box)
    assert 0 < expected == result.number_matched
    assert len(result.features) == min(expected, 1000)


def test_bbox_in_other_crs_selects_the_same_features(database_url: str, requests: Layer) -> None:
    box = (-114.12, 51.00, -114.02, 51.08)
    lonlat = page(database_url, requests, bbox=",".join(map(str, box)), limit="1")
    latlon = page(
        database_url,
        requests,
        bbox=f"{box[1]},{box[0]},{box[3]},{box[2]}",
        **{"bbox-crs": EPSG_4326.uri},
        limit="1",
    )
    assert latlon.number_matched == lonlat.number_matched
    # A box in the survey grid that contains the CRS84 box selects at least as much, and not the whole layer.
    to_3776 = Transformer.from_crs(4326, 3776, always_xy=True)
    xs, ys = to_3776.transform([box[0], box[2], box[0], box[2]], [box[1], box[1], box[3], box[3]])
    grid = page(database_url, requests, bbox=f"{min(xs)},{min(ys)},{max(xs)},{max(ys)}", **{"bbox-crs": EPSG_3776.uri})
    assert lonlat.number_matched <= grid.number_matched < requests.feature_count


def test_output_crs_is_reprojected_in_the_database(database_url: str, requests: Layer) -> None:
    plain = json.loads(page(database_url, requests, limit="1").features[0])
    lon, lat = plain["geometry"]["coordinates"]
    grid = json.loads(page(database_url, requests, limit="1", crs=EPSG_3776.uri).features[0])
    x, y = Transformer.from_crs(4326, 3776, always_xy=True).transform(lon, lat)
    assert grid["geometry"]["coordinates"] == pytest.approx([x, y], abs=0.01)
    flipped = json.loads(page(database_url, requests, limit="1", crs=EPSG_4326.uri).features[0])
    assert flipped["geometry"]["coordinates"] == pytest.approx([lat, lon])
    mercator = json.loads(page(database_url, requests, limit="1", crs=EPSG_3857.uri).features[0])
    mx, my = Transformer.from_crs(4326, 3857, always_xy=True).transform(lon, lat)
    assert mercator["geometry"]["coordinates"] == pytest.approx([mx, my], abs=0.01)
    assert "crs" not in grid["geometry"]


def test_datetime_matches_intervals_that_meet_it(database_url: str, registry: Registry) -> None:
    events = registry.resolve("events", ANONYMOUS)
    at = "2026-07-15T18:00:00Z"
    result = page(database_url, events, datetime=at, limit="1000")
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM layer_data.events WHERE starts_at <= %s AND (ends_at IS NULL OR ends_at >= %s)",
            [at, at],
        ).fetchone()
    assert row is not None and 0 < row[0] == result.number_matched == len(result.features)
    requests = registry.resolve("service_requests", ANONYMOUS)
    since = page(database_url, requests, datetime="2026-07-01T00:00:00Z/..", limit="1")
    assert since.number_matched == db_count(
        database_url, "closed_at IS NULL OR closed_at >= %s", [datetime(2026, 7, 1, tzinfo=UTC)]
    )
    with pytest.raises(InvalidParameter) as caught:
        parse_items(registry.resolve("wards", ANONYMOUS), {"datetime": at})
    assert caught.value.parameter == "datetime"


def test_property_filters_and_sortby(database_url: str, requests: Layer) -> None:
    result = page(database_url, requests, status="open", service_code="POTHOLE", sortby="-requested_at", limit="50")
    expected = db_count(database_url, "status = 'open' AND service_code = 'POTHOLE'")
    assert 0 < result.number_matched == expected
    times = [json.loads(f)["properties"]["requested_at"] for f in result.features]
    assert times == sorted(times, reverse=True)
    # A '+' in a URL arrives as a space: it still means ascending.
    ascending = page(database_url, requests, status="open", sortby=" requested_at", limit="50")
    times = [json.loads(f)["properties"]["requested_at"] for f in ascending.features]
    assert times == sorted(times)


def test_near_radius_sorted_by_geodesic_distance(database_url: str, registry: Registry) -> None:
    facilities = registry.resolve("facilities", ANONYMOUS)
    lon, lat, radius = -114.07, 51.05, 3000
    result = page(database_url, facilities, near=f"{lon},{lat}", radius=str(radius), limit="1000")
    got = [json.loads(f) for f in result.features]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT facility_id, ST_Distance(geom::geography, ST_MakePoint(%s, %s)::geography) AS d "
            "FROM layer_data.facilities WHERE ST_DWithin(geom::geography, ST_MakePoint(%s, %s)::geography, %s) "
            "ORDER BY d, facility_id",
            [lon, lat, lon, lat, radius],
        ).fetchall()
    assert rows and [f["id"] for f in got] == [r[0] for r in rows]
    assert result.number_matched == len(rows)
    distances = [f["properties"]["distance_m"] for f in got]
    assert distances == sorted(distances) and all(d <= radius for d in distances)
    assert distances == pytest.approx([r[1] for r in rows], abs=0.01)


@pytest.mark.parametrize(
    ("near", "radius"),
    [("nan,51", "100"), ("-114,inf", "100"), ("-200,51", "100"), ("-114,91", "100"), ("-114,51", "-5"),
     ("-114,51", "0"), ("-114,51", "1e9"), ("-114,51", "nan"), ("-114", "100"), ("-114,51,3", "100")],
)  # fmt: skip
def test_bad_near_and_radius_are_refused(requests: Layer, near: str, radius: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_items(requests, {"near": near, "radius": radius})
    assert caught.value.parameter in ("near", "radius")


def test_the_near_prefilter_keeps_every_feature_within_radius(database_url: str, requests: Layer) -> None:
    # At large radii the degree box is the approximation: it must still hold every feature ST_DWithin finds.
    lon, lat, radius = -114.09, 51.02, 20_000
    result = page(database_url, requests, near=f"{lon},{lat}", radius=str(radius), limit="1")
    expected = db_count(
        database_url, "ST_DWithin(geom::geography, ST_MakePoint(%s, %s)::geography, %s)", [lon, lat, radius]
    )
    assert result.number_matched == expected > 0


def test_a_streamed_page_equals_the_fetched_one(database_url: str, requests: Layer) -> None:
    query = parse_items(requests, {"limit": "2500", "bbox": "-114.2,50.9,-113.9,51.2"})
    whole = run(lambda conn: features.fetch_page(conn, requests, query), database_url)

    async def streamed(conn: psycopg.AsyncConnection[Any]) -> list[list[str]]:
        statements = features.build(requests, query, count_in_page=False)
        return [chunk async for chunk in features.stream_page(conn, statements, chunk_rows=300)]

    chunks = run(streamed, database_url)
    assert len(chunks) > 1 and max(len(c) for c in chunks) <= 300
    assert [f for c in chunks for f in c] == whole.features


def test_hostile_names_work_everywhere(database_url: str, registry: Registry) -> None:
    layer = registry.resolve(HOSTILE_ID, ANONYMOUS)
    assert set(layer.field_names) == set(HOSTILE_FIELDS)
    result = page(
        database_url,
        layer,
        **{'Name "q"': "name '3' \"x\""},
        sortby="-50% off",
        filter='"50% off" >= 0 AND "MixedCase" LIKE \'M%\'',
    )
    assert result.number_matched == 1
    feature = json.loads(result.features[0])
    assert feature["id"] == "M03" and feature["properties"]["50% off"] == 4.5
    every = page(database_url, layer, sortby="-50% off", limit="100", datetime="2026-07-10T00:00:00Z/..")
    values = [json.loads(f)["properties"]["50% off"] for f in every.features]
    assert values == sorted(values, reverse=True) and len(values) == 21
    assert HOSTILE_CANARY not in "".join(every.features)
    with pytest.raises(InvalidParameter):
        parse_items(layer, {HOSTILE_PRIVATE: "x"})


def test_one_feature_by_id(database_url: str, registry: Registry) -> None:
    facilities = registry.resolve("facilities", ANONYMOUS)
    found = run(lambda conn: features.fetch_feature(conn, facilities, 3, CRS84), database_url)
    assert found is not None and '"id":3,' in found[0]
    assert found[1].startswith('"') and len(found[1]) == 34  # a strong entity tag of the stored row
    assert features.id_value(facilities, "3") == 3
    assert features.id_value(facilities, "3'; DROP TABLE x") is None
    missing = run(lambda conn: features.fetch_feature(conn, facilities, 10**12, CRS84), database_url)
    assert missing is None


def test_items_query_defaults_have_no_filters() -> None:
    assert not ItemsQuery().has_filters


def test_property_selection_and_skip_geometry(database_url: str, requests: Layer) -> None:
    chosen = json.loads(page(database_url, requests, properties="status,request_id", limit="1").features[0])
    assert list(chosen["properties"]) == ["status", "request_id"] and chosen["geometry"]["type"] == "Point"
    bare = json.loads(page(database_url, requests, skipGeometry="true", limit="1").features[0])
    assert bare["geometry"] is None and len(bare["properties"]) == 5
    for bad in ({"properties": "requester_contact"}, {"properties": "status,status"}, {"skipGeometry": "maybe"}):
        with pytest.raises(InvalidParameter) as caught:
            parse_items(requests, bad)
        assert caught.value.parameter in bad


def test_number_matched_follows_direct_edits(database_url: str, tmp_path: Path) -> None:
    """Rows inserted or deleted behind the server's back still give an exact numberMatched."""
    m = manifest("edited counts", ["name"])
    load_file(database_url, m, write_geojson(tmp_path / "e.geojson", [({"name": "a"}, point(-114.0, 51.0))]))
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            layer = fresh_registry(database_url).resolve("edited counts", ANONYMOUS)
            conn.execute(
                'INSERT INTO layer_data."edited counts" (fid, name, geom) '
                "SELECT g, 'b', ST_SetSRID(ST_MakePoint(-114.0, 51.0), 4326) FROM generate_series(2, 6) AS g"
            )
            conn.execute('DELETE FROM layer_data."edited counts" WHERE fid = 2')
        query = parse_items(layer, {})
        page = run(lambda c: features.fetch_page(c, layer, query), database_url)
        assert page.number_matched == 5 == layer.feature_count + 4
    finally:
        drop_layer(database_url, "edited counts")
