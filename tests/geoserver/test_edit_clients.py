"""Edits from real clients over real HTTP: OWSLib's Part 4 calls unmodified, two clients racing on one feature, and a
live subscriber that goes away and comes back with Last-Event-ID.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.support.access import issue
from tests.support.layers import point
from tests.support.servers import LiveServer
from tests.support.uploads import bearer, geojson_bytes, upload

GROUP = "live-club"
LAYER = "live club stages"
L = quote(LAYER, safe="")


@pytest.fixture(scope="module")
def editor(client: TestClient, database_url: str) -> str:
    staff = issue(database_url, "gis@live", staff=True)
    assert client.post("/groups", json={"id": GROUP, "name": "Live"}, headers=bearer(staff)).status_code == 201
    token = issue(database_url, "ed@live", {GROUP: "editor"})
    start = geojson_bytes([({"name": f"stage {i}"}, point(-114.07 + i / 1000, 51.04)) for i in range(1, 4)])
    assert upload(client, token, "s.geojson", start, id=LAYER, title="Stages", group=GROUP).status_code == 201
    return token


def test_owslib_part4_calls_work_unmodified(live_server: LiveServer, editor: str) -> None:
    from owslib.ogcapi.features import Features

    api = Features(live_server.url)
    # Not Features(headers=...): OWSLib would add them to its module-level defaults, so every later client in this
    # process would send the token (OWSLib 0.35 updates REQUEST_HEADERS in place).
    api.headers = {**api.headers, "Authorization": f"Bearer {editor}"}
    stage = {"type": "Feature", "geometry": point(-114.05, 51.05), "properties": {"name": "owslib stage"}}
    assert api.collection_item_create(LAYER, stage) is True
    created = api.response_headers["Location"].rsplit("/", 1)[-1]
    moved = {**stage, "geometry": point(-114.04, 51.05), "properties": {"name": "owslib stage, moved"}}
    assert api.collection_item_update(LAYER, created, moved) is True
    item = httpx.get(f"{live_server.url}/collections/{L}/items/{created}", headers=bearer(editor)).json()
    assert item["properties"]["name"] == "owslib stage, moved" and item["geometry"]["coordinates"] == [-114.04, 51.05]
    assert api.collection_item_delete(LAYER, created) is True
    gone = httpx.get(f"{live_server.url}/collections/{L}/items/{created}", headers=bearer(editor))
    assert gone.status_code == 404


def test_two_clients_racing_on_one_feature_one_wins_the_other_gets_412(live_server: LiveServer, editor: str) -> None:
    url = f"{live_server.url}/collections/{L}/items/1"
    etag = httpx.get(url, headers=bearer(editor)).headers["etag"]
    start = threading.Barrier(2)
    answers: list[int] = []

    def edit(name: str) -> None:
        start.wait()
        headers = {**bearer(editor), "If-Match": etag, "Content-Type": "application/merge-patch+json"}
        answers.append(httpx.patch(url, json={"properties": {"name": name}}, headers=headers, timeout=30).status_code)

    racers = [threading.Thread(target=edit, args=(f"racer {i}",)) for i in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert sorted(answers) == [200, 412]
    assert httpx.get(url, headers=bearer(editor)).json()["properties"]["name"] in ("racer 0", "racer 1")


def test_clients_racing_without_if_match_all_win_and_every_version_is_kept(
    live_server: LiveServer, editor: str
) -> None:
    # Without If-Match a write is accepted whatever came before it (its previous version stays in history). A write
    # that waited for another's row lock once numbered its version like that one, and got a 500 (migration 0009).
    url = f"{live_server.url}/collections/{L}/items/2"
    racers, rounds = 8, 3
    before = len(httpx.get(f"{url}/versions", headers=bearer(editor)).json()["versions"])
    answers: list[int] = []

    def edit(name: str, start: threading.Barrier) -> None:
        start.wait()
        headers = {**bearer(editor), "Content-Type": "application/merge-patch+json"}
        answers.append(httpx.patch(url, json={"properties": {"name": name}}, headers=headers, timeout=30).status_code)

    for r in range(rounds):
        start = threading.Barrier(racers)
        threads = [threading.Thread(target=edit, args=(f"round {r} racer {i}", start)) for i in range(racers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert answers == [200] * (racers * rounds)
    versions = httpx.get(f"{url}/versions", headers=bearer(editor)).json()["versions"]
    numbers = [v["version"] for v in versions]
    assert sorted(numbers) == list(range(1, max(numbers) + 1))  # no gap, no repeat
    assert len(versions) == max(before, 1) + racers * rounds  # the loaded state, then every write


def test_clients_restoring_one_deleted_feature_at_once_all_win(live_server: LiveServer, editor: str) -> None:
    # A deleted feature has no row to lock: restores of it (and creates) take the layer's lock for new features.
    url = f"{live_server.url}/collections/{L}/items/3"
    assert httpx.delete(url, headers=bearer(editor)).status_code == 204
    first = httpx.get(f"{url}/versions", headers=bearer(editor)).json()["versions"][0]["version"]
    start, answers = threading.Barrier(6), []

    def restore() -> None:
        start.wait()
        answers.append(httpx.post(f"{url}/versions/{first}/restore", headers=bearer(editor), timeout=30).status_code)

    threads = [threading.Thread(target=restore) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 6
    numbers = [v["version"] for v in httpx.get(f"{url}/versions", headers=bearer(editor)).json()["versions"]]
    assert sorted(numbers) == list(range(1, max(numbers) + 1))


def _events(response: httpx.Response, wanted: int, seen: list[dict[str, Any]]) -> None:
    """Read SSE events until `wanted` change events came."""
    event: dict[str, Any] = {}
    for line in response.iter_lines():
        if line.startswith("id: "):
            event["id"] = int(line[4:])
        elif line.startswith("data: "):
            event["data"] = json.loads(line[6:])
        elif line == "" and "data" in event:
            seen.append(event)
            event = {}
            if len(seen) >= wanted:
                return


@pytest.fixture
def stream(live_server: LiveServer, editor: str) -> Iterator[Any]:
    """Open an SSE stream on the layer (optionally resuming), reading `wanted` events in a thread."""
    clients: list[httpx.Client] = []

    def open_stream(wanted: int, last_event_id: int | None = None, token: str | None = editor) -> list[Any]:
        headers = {"Accept": "text/event-stream", **(bearer(token) if token else {})}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        http = httpx.Client(timeout=30)
        clients.append(http)
        seen: list[dict[str, Any]] = []
        done = threading.Event()

        def read() -> None:
            with http.stream("GET", f"{live_server.url}/collections/{L}/changes", headers=headers) as response:
                seen.append({"status": response.status_code})
                if response.status_code == 200:
                    _events(response, wanted + 1, seen)
            done.set()

        threading.Thread(target=read, daemon=True).start()
        return [seen, done]

    yield open_stream
    for http in clients:
        http.close()


def test_a_subscriber_that_comes_back_gets_exactly_what_it_missed(
    live_server: LiveServer, editor: str, stream: Any
) -> None:
    url = f"{live_server.url}/collections/{L}/items"
    patch = {**bearer(editor), "Content-Type": "application/merge-patch+json"}
    seen, done = stream(1)
    time.sleep(0.5)  # subscribed: the stream starts from now
    httpx.patch(f"{url}/2", json={"properties": {"name": "before the break"}}, headers=patch)
    assert done.wait(15), "the live subscriber never got the change"
    assert seen[0]["status"] == 200 and seen[1]["data"]["fid"] == 2 and seen[1]["data"]["op"] == "update"
    assert set(seen[1]["data"]) == {"id", "layer", "fid", "op", "version", "bbox", "at"}  # never a property value
    last_id = seen[1]["id"]
    # The subscriber is away: three edits happen.
    for i, name in enumerate(("one", "two", "three"), start=1):
        httpx.patch(f"{url}/{i}", json={"properties": {"name": f"while away {name}"}}, headers=patch)
    resumed, resumed_done = stream(3, last_event_id=last_id)
    assert resumed_done.wait(15), "the resumed subscriber did not get the three changes"
    assert [e["data"]["fid"] for e in resumed[1:]] == [1, 2, 3]
    assert all(e["id"] > last_id for e in resumed[1:])


def test_an_anonymous_subscriber_never_sees_a_group_layers_changes(live_server: LiveServer, stream: Any) -> None:
    seen, done = stream(1, token=None)
    assert done.wait(10) and seen == [{"status": 404}]
    polled = httpx.get(f"{live_server.url}/collections/{L}/changes?since=0")
    assert polled.status_code == 404 and "while away" not in polled.text
