"""The day of a flood: a primary, a streaming replica replaying 1.5 s late on purpose, two `geoserver serve` instances
reading from the replica, and Varnish in front. An edit through one instance shows in the very next tile, item and
near-me answer, through Varnish and through both instances (a read served by the late replica would be caught);
Varnish never gives anyone a non-public tile."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import mapbox_vector_tile
import morecantile
import psycopg
import pytest

from layers.catalogue.migrate import upgrade
from layers.ingest.publish import publish
from tests.support.access import issue
from tests.support.cluster import make_shared_dir, running_cluster
from tests.support.layers import manifest, point, write_geojson
from tests.support.scaleout import StreamingReplica, Varnish
from tests.support.servers import ServerProcess

DELAY_MS = 1500
SHELTERS = "flood shelters"
CREW = "flood crew layer"
SHELTER = (-114.0621, 51.0447)
Z = 15


@dataclass
class Stack:
    url: str
    replica: StreamingReplica
    a: ServerProcess
    b: ServerProcess
    varnish: Varnish
    staff: str
    crew: str


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_cluster("geoserver-scale-") as primary:
        url = primary.url()
        upgrade(url)
        staff = issue(url, "gis@flood", staff=True)
        crew = issue(url, "lead@crew", {"crew": "viewer"})
        folder = make_shared_dir("geoserver-scale-files-")
        shelters = [({"id": i, "name": f"shelter {i}"}, point(SHELTER[0] + i / 10_000, SHELTER[1])) for i in range(5)]
        publish(
            url, manifest(SHELTERS, ["id", "name"], id_field="id"), file=write_geojson(folder / "s.geojson", shelters)
        )
        private = [({"id": 1, "name": "crew staging area"}, point(*SHELTER))]
        publish(url, manifest(CREW, ["id", "name"], id_field="id", visibility="group:crew"),
                file=write_geojson(folder / "c.geojson", private))  # fmt: skip
        with StreamingReplica(primary, make_shared_dir("geoserver-replica-"), delay_ms=DELAY_MS) as replica:
            secret = "flood-day-cursor-secret-0123456789abcdef"  # the same on every instance behind one address
            settings = {"read_database_urls": replica.url, "log_level": "warning", "cursor_secret": secret}
            a = ServerProcess(url, make_shared_dir("geoserver-scale-a-"), **settings)
            b = ServerProcess(url, make_shared_dir("geoserver-scale-b-"), **settings)
            varnish = Varnish(make_shared_dir("geoserver-varnish-"), [a.port, b.port])
            for server in (a, b):
                server.env["GEOSERVER_CACHE_PURGE_URLS"] = f"{varnish.url}/"
            with a, b, varnish:
                _wait_for_replicas(a, b)
                yield Stack(url, replica, a, b, varnish, staff, crew)


def _wait_for_replicas(*servers: ServerProcess) -> None:
    deadline = time.monotonic() + 30
    while not all(_replicas_ready(server) for server in servers):
        assert time.monotonic() < deadline, "the replica never came into rotation"
        time.sleep(0.2)


def _replicas_ready(server: ServerProcess) -> bool:
    replicas = httpx.get(f"{server.url}/ready").json().get("replicas", [])
    return bool(replicas) and all(r["in_rotation"] for r in replicas)


def _tile_path(layer: str) -> str:
    tile = morecantile.tms.get("WebMercatorQuad").tile(*SHELTER, Z)
    return f"/tiles/{layer.replace(' ', '%20')}/{Z}/{tile.x}/{tile.y}.mvt"


def _names_in_tile(response: httpx.Response, layer: str) -> set[str]:
    assert response.status_code == 200, response.text
    raw = response.content
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    decoded: dict[str, Any] = mapbox_vector_tile.decode(raw)
    return {f["properties"]["name"] for f in decoded[layer]["features"]}


def _answers(stack: Stack) -> dict[str, dict[str, Any]]:
    """The tile, the item and near me, through Varnish and through each instance, anonymously."""
    item = f"/collections/{SHELTERS.replace(' ', '%20')}/items/3"
    nearby = f"/nearby?lon={SHELTER[0]}&lat={SHELTER[1]}&layers={SHELTERS.replace(' ', '%20')}&limit=5"
    seen: dict[str, dict[str, Any]] = {}
    for name, base in (("varnish", stack.varnish.url), ("a", stack.a.url), ("b", stack.b.url)):
        tile = httpx.get(base + _tile_path(SHELTERS))
        seen[name] = {
            "tile": _names_in_tile(tile, SHELTERS),
            "item": httpx.get(base + item).json()["properties"]["name"],
            "nearby": {f["properties"]["name"] for f in httpx.get(base + nearby).json()["features"]},
            "tile_age": tile.headers.get("age"),
        }
    return seen


def test_anonymous_map_reads_are_served_by_the_replica(stack: Stack) -> None:
    _answers(stack)
    with psycopg.connect(stack.replica.url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'geoserver-interactive'"
        ).fetchone()
    assert row is not None and row[0] >= 1, "no instance read from the replica"


def test_an_edit_shows_at_once_through_varnish_and_both_instances(stack: Stack) -> None:
    before = _answers(stack)
    again = httpx.get(stack.varnish.url + _tile_path(SHELTERS))
    assert int(again.headers.get("age", "0")) >= 0 and "X-Varnish" in again.headers
    assert "shelter 3" in before["varnish"]["tile"]
    headers = {"Authorization": f"Bearer {stack.staff}", "Content-Type": "application/merge-patch+json"}
    edited = httpx.patch(
        f"{stack.a.url}/collections/{SHELTERS.replace(' ', '%20')}/items/3",
        json={"properties": {"name": "shelter 3: closed, flooded"}},
        headers=headers,
    )
    assert edited.status_code == 200, edited.text
    after = _answers(stack)  # at once: the replica has not replayed the edit for another second or so
    for where in ("varnish", "a", "b"):
        assert "shelter 3: closed, flooded" in after[where]["tile"], (where, after[where])
        assert after[where]["item"] == "shelter 3: closed, flooded", (where, after[where])
        assert "shelter 3: closed, flooded" in after[where]["nearby"], (where, after[where])


def test_varnish_never_gives_a_non_public_tile_to_anyone_else(stack: Stack) -> None:
    path = _tile_path(CREW)
    member = httpx.get(stack.varnish.url + path, headers={"Authorization": f"Bearer {stack.crew}"})
    assert _names_in_tile(member, CREW) == {"crew staging area"}
    assert "private" in member.headers["cache-control"]
    for _ in range(3):
        anonymous = httpx.get(stack.varnish.url + path)
        assert anonymous.status_code == 404 and b"crew staging area" not in anonymous.content


def test_public_answers_tell_shared_caches_how_long_and_what_they_hold(stack: Stack) -> None:
    tile = httpx.get(stack.a.url + _tile_path(SHELTERS))
    assert "s-maxage=" in tile.headers["cache-control"] and tile.headers["cache-control"].startswith("public")
    keys = tile.headers["surrogate-key"].split()
    assert "layer/flood%20shelters" in keys and any(k.startswith(f"tile/flood%20shelters/{Z}/") for k in keys)
    items = httpx.get(f"{stack.a.url}/collections/flood%20shelters/items")
    assert set(items.headers["surrogate-key"].split()) == {"items/flood%20shelters", "layer/flood%20shelters"}
    private = httpx.get(stack.a.url + _tile_path(CREW), headers={"Authorization": f"Bearer {stack.crew}"})
    assert "surrogate-key" not in private.headers and "s-maxage" not in private.headers["cache-control"]


def test_a_near_me_cursor_from_one_instance_pages_on_the_other(stack: Stack) -> None:
    query: dict[str, str | float] = {"lon": SHELTER[0], "lat": SHELTER[1], "layers": SHELTERS, "limit": 2}
    first = httpx.get(f"{stack.a.url}/nearby", params=query).json()
    following = next(link["href"] for link in first["links"] if link["rel"] == "next")
    second = httpx.get(following.replace(stack.a.url, stack.b.url))
    assert second.status_code == 200 and second.json()["numberReturned"] == 2


def test_a_replica_that_goes_away_leaves_the_rotation_and_comes_back(stack: Stack) -> None:
    stack.replica.stop()
    try:
        deadline = time.monotonic() + 15
        while _replicas_ready(stack.a):
            assert time.monotonic() < deadline, "the stopped replica stayed in rotation"
            time.sleep(0.1)
        for _ in range(5):  # anonymous reads go on, from the primary
            assert httpx.get(f"{stack.a.url}/collections/flood%20shelters/items/1").status_code == 200
    finally:
        stack.replica.start()
    _wait_for_replicas(stack.a, stack.b)
