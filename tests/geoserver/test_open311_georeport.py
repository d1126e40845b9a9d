"""Open311 GeoReport v2 against a real server, read with an Open311 client no one here wrote: the `georeport`
package from PyPI. It lists services, reads a service definition, one request and lists of requests with filters,
in JSON and in XML. It cannot discover the endpoint, create a request or resolve a token: those go over plain HTTP.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import requests
from georeport import GeoReport

from layers.open311.catalogue import load_catalogue
from tests.support.access import issue
from tests.support.open311 import NOISE, POTHOLE, form, place, remove_submitted, stored_counts
from tests.support.servers import LiveServer

W3 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture(scope="module")
def server(database_url: str, demo_city: dict[str, str], app_data_dir: Path) -> Iterator[str]:
    """The app over real HTTP, with room for every submission of this module from one address."""
    from geoserver.app import create_app
    from geoserver.settings import Settings

    settings = Settings(data_dir=app_data_dir, connect_timeout_s=2, open311_per_address_per_hour=1000)
    with LiveServer(create_app(settings, database_url)) as live:
        yield live.url
    remove_submitted(database_url)


@pytest.fixture(scope="module")
def keys(database_url: str) -> dict[str, str]:
    """An app's --open311 key, a group's token, a plain token and a staff token."""
    return {
        "app": issue(database_url, "neighbourhood-app", open311=True),
        "group": issue(database_url, "group-reporter", {"bridgeland-311": "editor"}, scope="bridgeland-311"),
        "plain": issue(database_url, "just-a-reader"),
        "staff": issue(database_url, "311-agent", staff=True),
    }


def _post(server: str, fields: dict[str, Any], fmt: str = "json") -> httpx.Response:
    return httpx.post(f"{server}/open311/v2/requests.{fmt}", data=fields, timeout=30)


def _create(server: str, fields: dict[str, Any]) -> str:
    response = _post(server, fields)
    assert response.status_code == 200, response.text
    return str(response.json()[0]["service_request_id"])


def test_discovery_names_the_endpoint_in_json_and_xml(server: str) -> None:
    doc = httpx.get(f"{server}/open311/discovery.json").json()
    assert set(doc) == {"changeset", "contact", "key_service", "endpoints"}
    [endpoint] = doc["endpoints"]
    assert endpoint["url"] == f"{server}/open311/v2"
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["type"] == "test"  # every service is a demo one
    assert endpoint["formats"] == ["text/xml", "application/json"]
    xml = httpx.get(f"{server}/open311/discovery.xml")
    assert xml.headers["content-type"] == "text/xml; charset=utf-8"
    assert xml.content.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    root = ET.fromstring(xml.content)
    assert root.tag == "discovery"
    assert [f.text for f in root.iterfind("endpoints/endpoint/formats/format")] == endpoint["formats"]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_services_and_their_definitions_through_georeport(server: str, fmt: str) -> None:
    client = GeoReport(f"{server}/open311/v2", output_format=fmt)
    services = client.get_service_list()
    assert [s["service_code"] for s in services] == load_catalogue().codes
    pothole = services[0]
    assert pothole["service_name"] == "Pothole" and pothole["group"] == "roads" and pothole["type"] == "realtime"
    assert str(pothole["metadata"]).lower() == "true" and "demo" in pothole["keywords"]
    assert {s["type"] for s in services} == {"realtime", "batch"}
    definition = client.get_service_definition("NOISE")
    assert definition["service_code"] == "NOISE"
    attributes = definition["attributes"] if fmt == "json" else definition["attributes"]["attribute"]
    sources, notice = attributes
    assert sources["code"] == "SOURCES" and sources["datatype"] == "multivaluelist"
    assert str(sources["required"]).lower() == "true" and str(notice["variable"]).lower() == "false"
    values = sources["values"] if fmt == "json" else sources["values"]["value"]
    assert [v["key"] for v in values] == ["music", "construction", "vehicle", "animal"]
    with pytest.raises(requests.HTTPError) as missing:
        client.get_service_definition("NO_SUCH_SERVICE")
    assert missing.value.response is not None and missing.value.response.status_code == 404


def test_a_request_is_created_and_read_back_by_id(server: str, database_url: str, keys: dict[str, str]) -> None:
    lon, lat = place(database_url, 1)
    fields = form(keys["app"], (lon, lat), POTHOLE, description="Deep hole by the bus stop", email="r@example.org")
    response = _post(server, fields)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json; charset=utf-8"
    [created] = response.json()
    assert set(created) == {"service_request_id", "service_notice", "account_id"}
    assert created["account_id"] is None and "five business days" in created["service_notice"]
    request_id = created["service_request_id"]
    for fmt in ("json", "xml"):
        found = GeoReport(f"{server}/open311/v2", output_format=fmt).get_service_request(request_id)
        assert found["service_request_id"] == request_id and found["status"] == "open"
        assert found["service_code"] == "POTHOLE" and found["service_name"] == "Pothole"
        assert found["description"] == "Deep hole by the bus stop"
        assert found["agency_responsible"] == "Roads (demo)"
        assert W3.fullmatch(found["requested_datetime"]) and W3.fullmatch(found["updated_datetime"])
        assert abs(float(found["lat"]) - lat) < 1e-6 and abs(float(found["long"]) - lon) < 1e-6  # exact service
    xml = ET.fromstring(httpx.get(f"{server}/open311/v2/requests/{request_id}.xml").content)
    assert xml.tag == "service_requests" and xml.find("request/service_request_id").text == request_id  # type: ignore[union-attr]
    assert httpx.get(f"{server}/open311/v2/requests/SR-99999999.json").status_code == 404


def test_a_batch_service_answers_a_token_that_gives_the_id(
    server: str, database_url: str, keys: dict[str, str]
) -> None:
    response = _post(server, form(keys["app"], place(database_url, 2), NOISE), fmt="xml")
    assert response.status_code == 200
    request = ET.fromstring(response.content).find("request")
    assert request is not None and request.find("service_request_id") is None  # a token instead, never both
    token = request.findtext("token")
    assert token
    [resolved] = httpx.get(f"{server}/open311/v2/tokens/{token}.json").json()
    assert resolved["token"] == token and resolved["service_request_id"].startswith("SR-")
    xml = ET.fromstring(httpx.get(f"{server}/open311/v2/tokens/{token}.xml").content)
    assert xml.findtext("request/service_request_id") == resolved["service_request_id"]
    found = GeoReport(f"{server}/open311/v2").get_service_request(resolved["service_request_id"])
    assert found["service_code"] == "NOISE" and found["description"] is None
    assert httpx.get(f"{server}/open311/v2/tokens/not-a-token.json").status_code == 404


def _direct_count(database_url: str, codes: list[str], status: str, start: str, end: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM layer_data.service_requests WHERE service_code = ANY(%s) AND "
            "(status = 'closed') = %s AND requested_at BETWEEN %s AND %s",
            [codes, status == "closed", start, end],
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_listing_with_filters_through_georeport(server: str, database_url: str, fmt: str) -> None:
    client = GeoReport(f"{server}/open311/v2", output_format=fmt)
    start, end = "2026-06-01T00:00:00Z", "2026-07-15T00:00:00Z"
    for status in ("closed", "open"):
        found = client.get_service_requests(service_code="POTHOLE,TREE", status=status, start_date=start, end_date=end)
        assert len(found) == _direct_count(database_url, ["POTHOLE", "TREE"], status, start, end) > 1
        assert {r["service_code"] for r in found} == {"POTHOLE", "TREE"} and {r["status"] for r in found} == {status}
        assert all(start <= r["requested_datetime"] <= end for r in found)
        times = [r["requested_datetime"] for r in found]
        assert times == sorted(times, reverse=True)
    by_id = client.get_service_requests(service_request_id="SR-00000001,SR-00000002", status="closed")
    assert sorted(r["service_request_id"] for r in by_id) == ["SR-00000001", "SR-00000002"]  # ids override


def test_wrong_filters_answer_the_specifications_errors(server: str) -> None:
    base = f"{server}/open311/v2/requests"
    cases = {
        ".json?start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z": 400,  # more than 90 days
        ".json?status=pending": 400,
        ".json?service_code=NO_SUCH": 400,
        ".json?start_date=yesterday": 400,
        ".json?jurisdiction_id=elsewhere.example": 404,
        ".json?bogus=1": 400,
        ".csv": 404,
    }
    for query, status in cases.items():
        response = httpx.get(base + query)
        assert response.status_code == status, query
        [error] = response.json()
        assert error["code"] == status and error["description"]
    xml = ET.fromstring(httpx.get(base + ".xml?status=pending").content)
    assert xml.tag == "errors" and xml.findtext("error/code") == "400"
    assert httpx.get(f"{server}/open311/v2/nothing/here.xml").status_code == 404


def test_the_same_report_twice_is_one_request(server: str, database_url: str, keys: dict[str, str]) -> None:
    fields = form(keys["app"], place(database_url, 3), POTHOLE, description="The same hole, again")
    first = _create(server, fields)
    counts = stored_counts(database_url)
    assert _create(server, {**fields, "description": "  the SAME hole,   again "}) == first
    assert stored_counts(database_url) == counts
    assert _create(server, {**fields, "description": "Another hole"}) != first
    assert _create(server, {**fields, "api_key": keys["group"]}) != first  # a group's token may submit too


def test_staff_close_and_reopen_a_request_over_http_and_the_command_line(
    server: str, database_url: str, keys: dict[str, str]
) -> None:
    request_id = _create(server, form(keys["app"], place(database_url, 4), POTHOLE))
    client = GeoReport(f"{server}/open311/v2")
    created = client.get_service_request(request_id)["updated_datetime"]
    url = f"{server}/open311/v2/requests/{request_id}/status.json"
    change = {"status": "closed", "status_notes": "Filled"}
    for headers in ({}, {"Authorization": f"Bearer {keys['app']}"}):
        refused = httpx.post(url, data=change, headers=headers)
        assert refused.status_code == 403 and refused.json()[0]["code"] == 403
    time.sleep(1.1)  # GeoReport times have whole seconds: let one pass so the change shows
    closed = httpx.post(url, data=change, headers={"Authorization": f"Bearer {keys['staff']}"})
    assert closed.status_code == 200, closed.text
    found = client.get_service_request(request_id)
    assert found["status"] == "closed" and found["status_notes"] == "Filled"
    assert found["updated_datetime"] > created
    item = httpx.get(f"{server}/collections/service_requests/items/{request_id}").json()
    assert item["properties"]["status"] == "closed" and item["properties"]["closed_at"]
    env = {**os.environ, "GEOSERVER_DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "geoserver", "open311", "status", request_id, "open", "--notes", "Reopened"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = client.get_service_request(request_id)
    assert found["status"] == "open" and found["status_notes"] == "Reopened"
    item = httpx.get(f"{server}/collections/service_requests/items/{request_id}").json()
    assert item["properties"]["status"] == "open" and item["properties"]["closed_at"] is None
    versions = httpx.get(f"{server}/collections/service_requests/items/{request_id}/versions").json()["versions"]
    assert len(versions) == 3
    with psycopg.connect(database_url, autocommit=True) as conn:
        actions = [r[0] for r in conn.execute(
            "SELECT action FROM geoserver.audit_log WHERE detail->>'fid' = %s ORDER BY id", [request_id]
        )]  # fmt: skip
    assert actions == ["open311.create", "open311.status", "open311.status"]
