"""Public measures of 311 service (`/open311/v2/stats`): computed in PostgreSQL from the published layer, in JSON
and CSV, and never a cell of fewer than five requests, however the requests are grouped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.support.access import issue
from tests.support.open311 import POTHOLE, form, place, remove_submitted
from tests.support.servers import ready_app

GROUPINGS = ["ward", "service_code", "month", "ward,service_code", "service_code,month", "ward,service_code,month"]


@pytest.fixture(scope="module")
def app(database_url: str, demo_city: dict[str, str], app_data_dir: Path) -> Iterator[TestClient]:
    """An app on the demo City, for the requests the measures count."""
    with ready_app(database_url, app_data_dir, open311_per_address_per_hour=1000) as client:
        yield client
    remove_submitted(database_url)


@pytest.mark.parametrize("by", GROUPINGS)
def test_no_cell_under_five_in_json_or_csv(app: TestClient, by: str) -> None:
    doc = app.get(f"/open311/v2/stats?by={by}").json()
    assert doc["by"] == by.split(",") and doc["min_cell"] == 5
    assert doc["cells"] and all(cell["requests"] >= 5 for cell in doc["cells"])
    if by == "ward,service_code,month":
        assert doc["suppressed_cells"] > 0  # 5,000 demo requests spread over about 1,400 cells: many are small
    rows = list(csv.DictReader(io.StringIO(app.get(f"/open311/v2/stats?by={by}&format=csv").text)))
    assert [int(r["requests"]) for r in rows] == [c["requests"] for c in doc["cells"]]
    assert all(int(r["requests"]) >= 5 for r in rows)


def test_counts_and_medians_match_the_database(app: TestClient, database_url: str) -> None:
    cells = {c["service_code"]: c for c in app.get("/open311/v2/stats?by=service_code").json()["cells"]}
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT service_code, count(*), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY "
            "extract(epoch FROM closed_at - requested_at) / 3600) FILTER (WHERE status = 'closed')::numeric, 1) "
            "FROM layer_data.service_requests GROUP BY service_code"
        ).fetchall()
    assert {code: (c["requests"], c["median_hours_to_close"]) for code, c in cells.items()} == {
        code: (n, float(median)) for code, n, median in rows
    }
    response = app.get("/open311/v2/stats?by=service_code")
    assert response.headers["cache-control"].startswith("public")
    again = app.get("/open311/v2/stats?by=service_code", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304


def test_a_cell_appears_only_once_it_holds_five_requests(app: TestClient, database_url: str) -> None:
    key = issue(database_url, "stats-app", open311=True)
    with psycopg.connect(database_url, autocommit=True) as conn:
        month = conn.execute("SELECT to_char(now() AT TIME ZONE 'America/Edmonton', 'YYYY-MM')").fetchone()[0]  # type: ignore[index]

    def this_month() -> list[dict[str, object]]:
        cells = app.get("/open311/v2/stats?by=month,service_code").json()["cells"]
        return [c for c in cells if c["month"] == month]

    remove_submitted(database_url)
    for n in range(5):
        assert this_month() == [], f"a cell of {n} requests was shown"
        response = app.post("/open311/v2/requests.json", data=form(key, place(database_url, 150 + n), POTHOLE))
        assert response.status_code == 200, response.text
    [cell] = this_month()
    assert cell["requests"] == 5 and cell["service_code"] == "POTHOLE"
    assert cell["median_hours_to_close"] is None  # none closed yet: no median from fewer than five


@pytest.mark.parametrize("query", ["by=street", "by=ward,ward", "format=xml", "by=", "since=2020"])
def test_bad_parameters_are_400_in_georeport_form(app: TestClient, query: str) -> None:
    response = app.get(f"/open311/v2/stats?{query}")
    assert response.status_code == 400 and response.json()[0]["code"] == 400
