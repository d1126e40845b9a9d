"""The fast lane answers tiles, near me and feature edits exactly as the app's own routing would, errors and all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from geoserver.fastlane import FastLane
from tests.support.access import issue
from tests.support.servers import ready_app

KEPT = ("content-type", "content-encoding", "cache-control", "etag", "vary", "surrogate-key", "retry-after", "allow")
PATHS = [
    "/tiles/wards/11/374/685.pbf",
    "/tiles/wards,facilities/12/738/1348.mvt",
    "/tiles/wards/11/374/685.png",
    "/tiles/wards/99/0/0.pbf",
    "/tiles/wards/-1/0/0.pbf",
    "/tiles/nope/1/0/0.pbf",
    "/tiles/wards,wards/12/738/1348.pbf",
    "/collections/wards/tiles/WebMercatorQuad/11/685/374",
    "/collections/wards/tiles/Nope/11/685/374",
    "/collections/nope/tiles/WebMercatorQuad/11/685/374",
    "/nearby?lon=-114.07&lat=51.05&at=2026-07-15T18:00:00Z",
    "/nearby?lon=-114.07&lat=51.05&at=2026-07-15T18:00:00Z&layers=facilities&limit=3",
    "/nearby?lon=nan&lat=51",
    "/nearby?lon=-114.07&lat=51.05&bogus=1",
    "/nearby?lon=-114.07&lat=51.05&access_token=abc",
    "/nearby/",
]


@pytest.fixture(scope="module")
def both(database_url: str, demo_city: dict[str, str], app_data_dir: Path) -> Iterator[tuple[TestClient, TestClient]]:
    """The app as it is, and the same app without its fast lane (every request through FastAPI's routing)."""
    with ready_app(database_url, app_data_dir) as laned, ready_app(database_url, app_data_dir) as routed:
        app: Any = routed.app
        lanes = [m for m in app.user_middleware if m.cls is FastLane]
        assert len(lanes) == 1 and app.middleware_stack is not None
        app.user_middleware.remove(lanes[0])
        app.middleware_stack = app.build_middleware_stack()
        yield laned, routed


def _answer(client: TestClient, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
    response = client.get(path, headers=headers)
    kept = {k: response.headers[k] for k in KEPT if k in response.headers}
    if response.headers.get("content-type", "").startswith(("application/geo+json", "application/json")):
        body = response.json()
        if isinstance(body, dict):
            body.pop("timeStamp", None)
        return response.status_code, kept, body
    return response.status_code, kept, response.content


@pytest.mark.parametrize("path", PATHS)
def test_the_lane_answers_as_the_routes_do(both: tuple[TestClient, TestClient], path: str) -> None:
    laned, routed = both
    assert _answer(laned, path, {}) == _answer(routed, path, {})


def test_the_lane_answers_callers_as_the_routes_do(both: tuple[TestClient, TestClient], database_url: str) -> None:
    laned, routed = both
    token = issue(database_url, "fastlane@test", staff=True)
    for headers in ({"Authorization": f"Bearer {token}"}, {"Authorization": "Bearer nope"}, {"Authorization": "x"},
                    {"Accept-Encoding": "gzip"}, {"If-None-Match": "*"}):  # fmt: skip
        for path in PATHS[:2] + PATHS[10:12]:
            assert _answer(laned, path, headers) == _answer(routed, path, headers), (path, headers)


def test_head_and_other_methods_go_on_to_the_routes(both: tuple[TestClient, TestClient]) -> None:
    laned, routed = both
    app: Any = laned.app
    lane = next(m for m in app.user_middleware if m.cls is FastLane)
    passed_on: list[str] = []

    async def routes(scope: Any, receive: Any, send: Any) -> None:
        passed_on.append(scope["method"])

    async def ask(method: str) -> None:
        scope = {"type": "http", "method": method, "path": "/tiles/wards/11/374/685.pbf", "root_path": ""}
        await FastLane(routes, **lane.kwargs)(scope, None, None)  # type: ignore[arg-type]

    assert laned.portal is not None
    for method in ("HEAD", "POST", "PUT", "OPTIONS"):
        laned.portal.call(ask, method)
    assert passed_on == ["HEAD", "POST", "PUT", "OPTIONS"]
    for method in ("HEAD", "OPTIONS"):  # and they answer as before
        a, b = laned.request(method, PATHS[0]), routed.request(method, PATHS[0])
        assert (a.status_code, a.content) == (b.status_code, b.content), method


def test_feature_edits_take_the_lane_and_fail_as_the_routes_do(
    both: tuple[TestClient, TestClient], database_url: str
) -> None:
    laned, routed = both
    staff = {"Authorization": f"Bearer {issue(database_url, 'fastlane-edits@test', staff=True)}"}
    patch = {**staff, "Content-Type": "application/merge-patch+json"}
    fid = laned.get("/collections/wards/items?limit=1").json()["features"][0]["id"]
    item = f"/collections/wards/items/{fid}"
    before = laned.get(item).json()
    cases: list[tuple[str, str, dict[str, str], bytes]] = [
        ("PATCH", item, {"Content-Type": "application/merge-patch+json"}, b"{}"),  # no token
        ("PATCH", item, {"Authorization": "Bearer nope"}, b"{}"),
        ("PATCH", item, {**staff, "Content-Type": "text/plain"}, b"{}"),
        ("PATCH", item, patch, b"not json"),
        ("PATCH", item, patch, b'{"properties": {"no_such_field": 1}}'),
        ("PATCH", item, {**patch, "If-Match": '"stale"'}, b'{"properties": {}}'),
        ("PUT", item, {**staff, "Content-Type": "application/geo+json", "If-Match": '"stale"'},
         b'{"type": "Feature", "geometry": null, "properties": {}}'),
        ("PATCH", "/collections/nope/items/1", patch, b"{}"),
        ("PATCH", "/collections/wards/items/999999999", patch, b'{"properties": {}}'),
    ]  # fmt: skip
    for method, path, headers, body in cases:
        a = laned.request(method, path, headers=headers, content=body)
        b = routed.request(method, path, headers=headers, content=body)
        assert a.status_code == b.status_code and 400 <= a.status_code < 500, (method, path, a.text)
        assert _errors(a.json()) == _errors(b.json()), (method, path)
    assert laned.get(item).json() == before  # nothing was written
    # A write that succeeds (the name it already has: the data stays as it was) is answered alike, ETag included.
    name = before["properties"]["name"]
    for client in (laned, routed):
        done = client.patch(item, headers=patch, json={"properties": {"name": name}})
        assert done.status_code == 200 and done.json()["properties"]["name"] == name, done.text
    a, b = (c.patch(item, headers=patch, json={"properties": {"name": name}}) for c in (laned, routed))
    assert _answer_of(a) == _answer_of(b)
    assert laned.get(item).json() == before


def test_the_lane_takes_feature_edits_and_leaves_reads_of_features_to_the_routes(
    both: tuple[TestClient, TestClient],
) -> None:
    laned, _ = both
    app: Any = laned.app
    lane = FastLane(_passed_on, **next(m for m in app.user_middleware if m.cls is FastLane).kwargs)
    served: list[tuple[str, dict[str, str]]] = []

    async def serve(route: Any, caller: Any, params: dict[str, str], scope: Any, receive: Any, send: Any) -> None:
        served.append((scope["method"], params))

    lane._serve = serve  # type: ignore[method-assign, assignment]
    PASSED.clear()

    async def ask(method: str, path: str) -> None:
        await lane({"type": "http", "method": method, "path": path, "root_path": ""}, None, None)  # type: ignore[arg-type]

    assert laned.portal is not None
    for method in ("PATCH", "PUT", "GET", "DELETE", "HEAD"):
        laned.portal.call(ask, method, "/collections/wards/items/7")
    laned.portal.call(ask, "PATCH", "/collections/wards/items")
    assert served == [(m, {"collection_id": "wards", "feature_id": "7"}) for m in ("PATCH", "PUT")]
    assert PASSED == ["GET", "DELETE", "HEAD", "PATCH"]


PASSED: list[str] = []


async def _passed_on(scope: Any, receive: Any, send: Any) -> None:
    PASSED.append(scope["method"])


def _answer_of(response: Any) -> tuple[int, dict[str, str], Any]:
    kept = {k: response.headers[k] for k in KEPT if k in response.headers}
    return response.status_code, kept, response.json()


def _errors(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("timeStamp", "requestId", "instance")}
