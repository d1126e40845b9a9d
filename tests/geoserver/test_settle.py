"""A write answers only once this instance has acted on it: the writer's next read never meets a stale tile.

The listener is slowed down here (every change notice waits before it is acted on), so a write that answered before
its notice was acted on would be caught reading its old tile. A PUT or PATCH waits for its own change notice (named
by its transaction) and sends no marker notice of its own; other writes send the marker and wait for it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import mapbox_vector_tile
import morecantile
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from geoserver.state import SETTLE_CHANNEL, AppState
from tests.support.access import issue
from tests.support.layers import drop_layer, point
from tests.support.uploads import bearer, geojson_bytes, upload

GROUP = "settle-club"
LAYER = "settle-club-stages"
L = quote(LAYER, safe="")
HERE, FAR = (-113.8812, 51.1931), (-114.3012, 50.8561)  # the City's far corners: other tests look downtown
SLOW_S = 0.4  # each change notice waits this long before the listener acts on it
TILE = morecantile.tms.get("WebMercatorQuad").tile(*HERE, 14)
TILE_PATH = f"/collections/{L}/tiles/WebMercatorQuad/{TILE.z}/{TILE.y}/{TILE.x}"  # row, then column


@pytest.fixture(scope="module")
def editor(client: TestClient, database_url: str) -> Iterator[str]:
    staff = issue(database_url, "gis@settle", staff=True)
    assert client.post("/groups", json={"id": GROUP, "name": "Settle club"}, headers=bearer(staff)).status_code == 201
    token = issue(database_url, "pub@settle", {GROUP: "publisher"})
    made = upload(client, token, "s.geojson", geojson_bytes([({"name": "stage"}, point(*HERE))]), id=LAYER,
                  title="Stages", group=GROUP)  # fmt: skip
    assert made.status_code == 201, made.text
    # Public: only tiles without anything private enter the server's tile cache.
    assert client.patch(f"/collections/{L}", json={"visibility": "public"}, headers=bearer(token)).status_code == 200
    yield token
    drop_layer(database_url, LAYER)  # the other tests' map and near-me answers never meet it


@pytest.fixture
def slow_listener(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> AppState:
    state: AppState = client.app.state.geoserver  # type: ignore[attr-defined]
    act = state.on_change

    async def slowly(payload: str) -> None:
        await asyncio.sleep(SLOW_S)
        await act(payload)

    monkeypatch.setattr(state, "on_change", slowly)
    return state


class Markers:
    """The marker notices sent while a test runs, heard by a connection of the test's own."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.heard: list[str] = []
        self.listening, self.stop = threading.Event(), threading.Event()

    def listen(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(SETTLE_CHANNEL)))
            self.listening.set()
            while not self.stop.is_set():
                self.heard.extend(n.payload for n in conn.notifies(timeout=0.1))

    def until_now(self) -> list[str]:
        """Every marker sent before this call: one of our own is sent, and notices arrive in commit order."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute("SELECT pg_notify(%s, 'test: until now')", [SETTLE_CHANNEL])
        deadline = time.monotonic() + 10
        while "test: until now" not in self.heard:
            assert time.monotonic() < deadline, "the test's own marker never came"
            time.sleep(0.02)
        return self.heard[: self.heard.index("test: until now")]


@pytest.fixture
def markers(database_url: str) -> Iterator[Markers]:
    found = Markers(database_url)
    thread = threading.Thread(target=found.listen, daemon=True)
    thread.start()
    assert found.listening.wait(10), "the test's listener did not start"
    try:
        yield found
    finally:
        found.stop.set()
        thread.join(timeout=5)


def names_in_tile(client: TestClient, token: str, *, cached: bool | None = None) -> list[str]:
    answer = client.get(TILE_PATH, headers={**bearer(token), "Accept-Encoding": "identity"})
    assert answer.status_code in (200, 204), answer.text
    if cached is not None:
        assert answer.headers["x-tile-cache"] == ("hit" if cached else "miss")
    layers: dict[str, Any] = mapbox_vector_tile.decode(answer.content) if answer.content else {}
    return sorted(f["properties"]["name"] for layer in layers.values() for f in layer["features"])


def test_a_patch_answers_after_its_own_notice_and_sends_no_marker(
    client: TestClient, editor: str, slow_listener: AppState, markers: Markers
) -> None:
    assert names_in_tile(client, editor) == ["stage"]
    assert names_in_tile(client, editor, cached=True) == ["stage"]
    fid = client.get(f"/collections/{L}/items", headers=bearer(editor)).json()["features"][0]["id"]
    moved = client.patch(
        f"/collections/{L}/items/{fid}",
        json={"geometry": point(*FAR)},
        headers={**bearer(editor), "Content-Type": "application/merge-patch+json"},
    )
    assert moved.status_code == 200, moved.text
    assert names_in_tile(client, editor, cached=False) == []  # the cached tile went before the answer
    back = client.put(
        f"/collections/{L}/items/{fid}",
        json={"type": "Feature", "geometry": point(*HERE), "properties": {"name": "stage, back"}},
        headers={**bearer(editor), "If-Match": moved.headers["etag"]},
    )
    assert back.status_code == 200, back.text
    assert names_in_tile(client, editor, cached=False) == ["stage, back"]
    assert markers.until_now() == []  # both waited for their own change notice
    assert slow_listener._awaiting == {}


def test_other_writes_wait_for_a_marker(
    client: TestClient, editor: str, slow_listener: AppState, markers: Markers
) -> None:
    before = names_in_tile(client, editor)
    assert names_in_tile(client, editor, cached=True) == before
    created = client.post(
        f"/collections/{L}/items",
        json={"type": "Feature", "geometry": point(*HERE), "properties": {"name": "second stage"}},
        headers=bearer(editor),
    )
    assert created.status_code == 201, created.text
    assert names_in_tile(client, editor, cached=False) == sorted([*before, "second stage"])
    assert len(markers.until_now()) == 1
