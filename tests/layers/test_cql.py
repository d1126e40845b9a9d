"""CQL2 filters: parsed by the cql2 library, compiled to bound SQL over public fields, run on a real PostGIS."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import psycopg
import pytest
from psycopg import sql

from layers.catalogue.records import Layer
from layers.catalogue.visibility import ANONYMOUS
from layers.errors import InvalidParameter
from layers.queries import cql
from layers.queries.crs import CRS84, EPSG_3776, EPSG_4326
from layers.sqlcompose import Binder, render
from tests.support.layers import fresh_registry


@pytest.fixture(scope="module")
def requests(database_url: str, demo_city: dict[str, str]) -> Layer:
    return fresh_registry(database_url).resolve("service_requests", ANONYMOUS)


def matched(database_url: str, layer: Layer, text: str, lang: str = "cql2-text", crs: Any = CRS84) -> int:
    """How many features a filter selects, through the compiled SQL."""
    bind = Binder()
    condition = cql.to_sql(cql.parse(text, lang), layer, bind=bind, filter_crs=crs)
    statement = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(layer.table, condition)
    with psycopg.connect(database_url) as conn:
        row = conn.execute(render(statement), bind.params_for(render(statement))).fetchone()
    assert row is not None
    return int(row[0])


def direct(database_url: str, where: str, params: list[Any] | None = None) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(f"SELECT count(*) FROM layer_data.service_requests WHERE {where}", params).fetchone()  # noqa: S608
    assert row is not None
    return int(row[0])


CASES = [
    ("status = 'open'", "status = 'open'"),
    ("status <> 'closed' AND service_code = 'POTHOLE'", "status <> 'closed' AND service_code = 'POTHOLE'"),
    ("NOT (status = 'open') OR service_code = 'TREE'", "NOT (status = 'open') OR service_code = 'TREE'"),
    ("service_code IN ('NOISE', 'TREE')", "service_code IN ('NOISE', 'TREE')"),
    ("request_id LIKE 'SR-000001%'", "request_id LIKE 'SR-000001%'"),
    ("CASEI(status) = CASEI('OPEN')", "lower(status) = 'open'"),
    ("request_id BETWEEN 'SR-00000100' AND 'SR-00000200'", "request_id BETWEEN 'SR-00000100' AND 'SR-00000200'"),
    ("closed_at IS NULL", "closed_at IS NULL"),
    ("requested_at > TIMESTAMP('2026-05-01T00:00:00Z')", "requested_at > '2026-05-01T00:00:00Z'"),
    ("requested_at >= DATE('2026-05-01')", "requested_at >= '2026-05-01T00:00:00Z'"),
    ("closed_at > requested_at + 0 OR closed_at IS NULL", None),
    ("T_INTERSECTS(requested_at, INTERVAL('2026-06-01T00:00:00Z', '..'))", "requested_at >= '2026-06-01T00:00:00Z'"),
    ("T_BEFORE(requested_at, TIMESTAMP('2026-01-01T00:00:00Z'))", "requested_at < '2026-01-01T00:00:00Z'"),
    ("T_AFTER(closed_at, DATE('2026-07-01'))", "closed_at > '2026-07-01T23:59:59.999999Z'"),
    ("T_DURING(requested_at, INTERVAL('2026-02-01', '2026-03-01'))",
     "requested_at > '2026-02-01T00:00:00Z' AND requested_at < '2026-03-01T23:59:59.999999Z'"),
    ("S_INTERSECTS(geometry, BBOX(-114.12, 51.0, -114.02, 51.08))",
     "ST_Intersects(geom, ST_MakeEnvelope(-114.12, 51.0, -114.02, 51.08, 4326))"),
    ("S_WITHIN(geometry, POLYGON((-114.12 51.0, -114.02 51.0, -114.02 51.08, -114.12 51.08, -114.12 51.0)))",
     "ST_Within(geom, ST_MakeEnvelope(-114.12, 51.0, -114.02, 51.08, 4326))"),
    ("S_DISJOINT(geometry, BBOX(-114.12, 51.0, -114.02, 51.08)) AND status = 'open'",
     "NOT ST_Intersects(geom, ST_MakeEnvelope(-114.12, 51.0, -114.02, 51.08, 4326)) AND status = 'open'"),
    ("closed_at > requested_at", "closed_at > requested_at"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "where"), [c for c in CASES if c[1] is not None])
def test_filters_select_what_the_equivalent_sql_selects(
    database_url: str, requests: Layer, text: str, where: str
) -> None:
    expected = direct(database_url, where)
    assert matched(database_url, requests, text) == expected
    # The same filter in CQL2 JSON, as the cql2 library writes it, selects the same.
    as_json = json.dumps(cql.parse(text))
    assert matched(database_url, requests, as_json, "cql2-json") == expected


def test_the_filters_are_not_trivial(database_url: str, requests: Layer) -> None:
    counts = {text: direct(database_url, where) for text, where in CASES if where is not None}
    total = requests.feature_count
    assert all(0 < n < total for n in counts.values()), counts


def test_filter_crs_reprojects_literal_geometries(database_url: str, requests: Layer) -> None:
    box84 = "S_INTERSECTS(geometry, BBOX(-114.12, 51.0, -114.02, 51.08))"
    latlon = "S_INTERSECTS(geometry, BBOX(51.0, -114.12, 51.08, -114.02))"
    assert matched(database_url, requests, latlon, crs=EPSG_4326) == matched(database_url, requests, box84)
    # A point in the survey grid, buffered in the grid's metres: the same features as the geodesic test.
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, 3776, always_xy=True).transform(-114.07, 51.05)
    corners = [(x - 500, y - 500), (x + 500, y - 500), (x + 500, y + 500), (x - 500, y + 500), (x - 500, y - 500)]
    square = "POLYGON((" + ", ".join(f"{cx} {cy}" for cx, cy in corners) + "))"
    in_grid = matched(database_url, requests, f"S_INTERSECTS(geometry, {square})", crs=EPSG_3776)
    expected = direct(
        database_url,
        "ST_Intersects(ST_Transform(geom, 3776), ST_MakeEnvelope(%s, %s, %s, %s, 3776))",
        [x - 500, y - 500, x + 500, y + 500],
    )
    assert in_grid == expected > 0


@pytest.mark.parametrize(
    "text",
    [
        "requester_contact = 'x'",  # private
        "no_such_field = 'x'",  # unknown
        "S_INTERSECTS(requester_contact, BBOX(0, 0, 1, 1))",
        "requested_at = 5",  # a time compared with a number
        "status = 5",
        "status LIKE 5",
        "request_id > TIMESTAMP('2026-01-01T00:00:00Z')",
        "status = 'a' AND",
        "status = 'a'; DROP TABLE layer_data.service_requests",
        "ACCENTI(status) = 'x'",
        "A_CONTAINS(status, ('a'))",
        "geometry = 'x'",
        "S_INTERSECTS(geometry, POLYGON((0 0, 1 1, 1 0, 0 1, 0 0)))",  # a bow tie
        "status IN ()",
        "status = 'a\x00'",
        "closed_at > status",
        "T_INTERSECTS(status, INTERVAL('2020-01-01', '..'))",
    ],
)
def test_bad_filters_are_refused_naming_filter(database_url: str, requests: Layer, text: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        matched(database_url, requests, text)
    assert caught.value.parameter == "filter"


def test_private_and_unknown_names_fail_in_the_same_words(requests: Layer) -> None:
    messages = []
    for name in ("requester_contact", "no_such_field"):
        with pytest.raises(InvalidParameter) as caught:
            cql.to_sql(cql.parse(f"{name} = 'x'"), requests, bind=Binder(), filter_crs=CRS84)
        messages.append(caught.value.message.replace(name, "NAME"))
    assert messages[0] == messages[1]


@pytest.mark.parametrize(
    "text",
    [
        "(" * 5000 + "status = 'open'" + ")" * 5000,
        "status = " + "-" * 8000 + "1",
        "NOT " * 3000 + "status = 'open'",
        "status = 'x' AND " * 2000 + "status = 'y'",
        "x" * 20_000,
    ],
)
def test_deeply_nested_or_huge_filters_are_refused_without_crashing(requests: Layer, text: str) -> None:
    # The cql2 parser crashes the whole process on deep nesting; the guard must refuse first. Run in a child so a
    # crash fails this test instead of the whole run.
    code = (
        "import sys\n"
        "from layers.queries import cql\n"
        "from layers.errors import InvalidParameter\n"
        "try:\n"
        "    cql.parse(sys.stdin.read())\n"
        "except InvalidParameter:\n"
        "    print('refused')\n"
        "else:\n"
        "    print('accepted')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.strip() in ("refused", "accepted")
    if text.startswith("(") or "-" * 100 in text or text.startswith("NOT NOT"):
        assert result.stdout.strip() == "refused"


def test_deep_cql2_json_is_refused(requests: Layer) -> None:
    tree: dict[str, Any] = {"op": "=", "args": [{"property": "status"}, "open"]}
    for _ in range(200):
        tree = {"op": "not", "args": [tree]}
    with pytest.raises(InvalidParameter):
        cql.parse(json.dumps(tree), "cql2-json")
    with pytest.raises(InvalidParameter):
        cql.parse("[" * 100_000, "cql2-json")


def test_values_are_bound_never_spliced(database_url: str, requests: Layer) -> None:
    payloads = [
        "x' OR '1'='1",
        "x'; DROP TABLE layer_data.service_requests; --",
        "x' UNION SELECT requester_contact FROM layer_data.service_requests --",
        "x'||pg_sleep(3)||'",
    ]
    started = time.monotonic()
    for payload in payloads:
        quoted = payload.replace("'", "''")
        assert matched(database_url, requests, f"status = '{quoted}'") == 0
    assert time.monotonic() - started < 2.5
    assert direct(database_url, "true") == requests.feature_count  # the table is still there, whole
