"""Sharing and roles: sharing never makes a layer public by accident, nobody reaches above their role or outside
their group, unpublished layers vanish and come back, and tokens never show in answers or logs.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from typing import Any
from urllib.parse import quote

import morecantile
import pytest
from fastapi.testclient import TestClient

from tests.support.access import issue
from tests.support.layers import point
from tests.support.uploads import bearer, geojson_bytes, replace, upload

OWNER, FRIEND, STRANGER = "share-owner", "share-friend", "share-stranger"
LAYER = "shared walking routes"
L = quote(LAYER, safe="")


@pytest.fixture(scope="module")
def people(client: TestClient, database_url: str) -> dict[str, str]:
    staff = issue(database_url, "gis@share", staff=True)
    for group in (OWNER, FRIEND, STRANGER):
        assert (
            client.post("/groups", json={"id": group, "name": group.title()}, headers=bearer(staff)).status_code == 201
        )
    found = {
        "staff": staff,
        "publisher": issue(database_url, "pub@owner", {OWNER: "publisher"}),
        "editor": issue(database_url, "ed@owner", {OWNER: "editor"}),
        "viewer": issue(database_url, "view@owner", {OWNER: "viewer"}),
        "friend": issue(database_url, "f@friend", {FRIEND: "viewer"}),
        "stranger": issue(database_url, "s@stranger", {STRANGER: "publisher"}),
    }
    walk = geojson_bytes([({"name": "river loop"}, point(-114.08, 51.05))])
    made = upload(client, found["editor"], "walk.geojson", walk, id=LAYER, title="Walks", group=OWNER)
    assert made.status_code == 201, made.text
    return found


def status(client: TestClient, token: str | None, path: str = f"/collections/{L}") -> int:
    return client.get(path, headers=bearer(token) if token else {}).status_code


def share(client: TestClient, token: str, visibility: str) -> int:
    return client.patch(f"/collections/{L}", json={"visibility": visibility}, headers=bearer(token)).status_code


def _every_request(q: str, walk: bytes) -> list[tuple[str, str, dict[str, Any]]]:
    """Each read and write of a layer `q` (quoted) and of its feature 1."""
    feature = {"type": "Feature", "geometry": point(-114.08, 51.05), "properties": {"name": "x"}}
    t = morecantile.tms.get("WebMercatorQuad").tile(-114.08, 51.05, 14)
    patch = {"headers": {"Content-Type": "application/merge-patch+json"}}
    item = f"/collections/{q}/items/1"
    return [
        ("GET", item, {}),
        ("PUT", item, {"json": feature}),
        ("PATCH", item, {"content": b'{"properties": {"name": "x"}}', **patch}),
        ("DELETE", item, {}),
        ("POST", f"/collections/{q}/items", {"json": feature}),
        ("GET", f"{item}/versions", {}),
        ("GET", f"{item}/versions/1", {}),
        ("POST", f"{item}/versions/1/restore", {}),
        ("OPTIONS", item, {}),
        ("GET", f"/collections/{q}/schema", {}),
        ("GET", f"/collections/{q}/changes?since=0", {}),
        ("GET", f"/collections/{q}/history", {}),
        ("PATCH", f"/collections/{q}", {"content": b'{"title": "x"}', **patch}),
        ("DELETE", f"/collections/{q}", {}),
        ("PUT", f"/collections/{q}/data", {"files": {"file": ("w.geojson", walk)}}),
        ("POST", f"/collections/{q}/restore", {}),
        ("GET", f"/collections/{q}/tiles/WebMercatorQuad/14/{t.y}/{t.x}", {}),
        ("GET", f"/tiles/{q}.json", {}),
        ("GET", f"/tiles/wards,{q}/14/{t.x}/{t.y}.pbf", {}),
        ("GET", f"/collections/{q}/download.csv", {}),
    ]


def test_outsiders_meet_a_group_layer_exactly_as_a_missing_one(client: TestClient, people: dict[str, str]) -> None:
    """Anonymous callers and another group's publisher get, for every read and write of a group's layer, the answer
    a layer that does not exist gets (status and body), and nothing changes."""
    walk = geojson_bytes([({"name": "replaced"}, point(-114.08, 51.05))])
    missing = quote("no such walks", safe="")
    for token in (None, people["stranger"]):
        auth = bearer(token) if token else {}
        for (method, hidden, kwargs), (_, absent, _) in zip(
            _every_request(L, walk), _every_request(missing, walk), strict=True
        ):
            kwargs = {**kwargs, "headers": {**auth, **kwargs.get("headers", {})}}
            answers = [client.request(method, path, **kwargs) for path in (hidden, absent)]
            seen = [(a.status_code, a.text.replace(L, "?").replace(LAYER, "?").replace(missing, "?")
                     .replace("no such walks", "?")) for a in answers]  # fmt: skip
            assert seen[0] == seen[1], (method, hidden, token is not None, seen)
            assert answers[0].status_code in (401, 403, 404, 405), (method, hidden, answers[0].text)
    items = client.get(f"/collections/{L}/items", headers=bearer(people["viewer"])).json()["features"]
    assert [f["properties"]["name"] for f in items] == ["river loop"]


def test_sharing_with_a_group_shows_the_layer_to_it_and_to_nobody_else(
    client: TestClient, people: dict[str, str], database_url: str
) -> None:
    assert status(client, people["friend"]) == 404
    assert share(client, people["publisher"], f"groups:{OWNER},{FRIEND}") == 200
    doc = client.get(f"/collections/{L}", headers=bearer(people["friend"])).json()
    assert doc["visibility"] == f"groups:{OWNER},{FRIEND}"
    listed = subprocess.run(
        [sys.executable, "-m", "geoserver", "layers", "list", "--json"],
        env={**os.environ, "GEOSERVER_DATABASE_URL": database_url}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert {row["id"]: row["visibility"] for row in json.loads(listed.stdout)}[LAYER] == doc["visibility"]
    assert status(client, people["friend"], f"/collections/{L}/items") == 200
    for outsider in (None, people["stranger"]):
        assert status(client, outsider) == 404 and status(client, outsider, f"/collections/{L}/items") == 404
    assert LAYER not in client.get("/catalog").text and LAYER not in client.get("/collections").text
    assert share(client, people["publisher"], f"group:{OWNER}") == 200  # the share is revoked
    assert status(client, people["friend"]) == 404 and status(client, None) == 404


@pytest.mark.parametrize(
    "visibility", [f"group:{FRIEND}", f"groups:{FRIEND}", "groups:share-owner,no-such-group", "everyone", "", "PUBLIC"]
)
def test_a_malformed_or_foreign_visibility_is_refused_and_changes_nothing(
    client: TestClient, people: dict[str, str], visibility: str
) -> None:
    response = client.patch(f"/collections/{L}", json={"visibility": visibility}, headers=bearer(people["publisher"]))
    assert response.status_code == 400 and response.json()["parameter"] == "visibility"
    assert status(client, None) == 404 and status(client, people["friend"]) == 404


def test_roles_decide_who_may_change_what(client: TestClient, people: dict[str, str]) -> None:
    assert share(client, people["editor"], "public") == 403  # an editor never changes who sees a layer
    assert share(client, people["viewer"], "public") == 403
    assert share(client, people["stranger"], "public") == 404  # another group cannot even tell it exists
    title = client.patch(f"/collections/{L}", json={"title": "Walking routes"}, headers=bearer(people["editor"]))
    assert title.status_code == 200 and title.json()["title"] == "Walking routes"
    walk = geojson_bytes([({"name": "ridge"}, point(-114.09, 51.05))])
    assert replace(client, people["viewer"], LAYER, "w.geojson", walk).status_code == 403
    assert replace(client, people["stranger"], LAYER, "w.geojson", walk).status_code == 404
    assert status(client, None) == 404


def test_a_publisher_manages_its_own_group_only_and_never_above_its_role(
    client: TestClient, people: dict[str, str]
) -> None:
    pub, stranger = bearer(people["publisher"]), bearer(people["stranger"])
    assert client.get(f"/groups/{OWNER}/members", headers=stranger).status_code == 404
    assert client.post(f"/groups/{OWNER}/tokens", json={"subject": "x"}, headers=stranger).status_code == 404
    assert client.post(f"/groups/{OWNER}/members", json={"subject": "x", "role": "editor"},
                       headers=bearer(people["editor"])).status_code == 403  # fmt: skip
    staff_attempt = client.post(f"/groups/{OWNER}/tokens", json={"subject": "x", "staff": True}, headers=pub)
    assert staff_attempt.status_code == 400  # no such field: a group never grants staff
    assert (
        client.post(f"/groups/{OWNER}/members", json={"subject": "x", "role": "admin"}, headers=pub).status_code == 400
    )
    assert client.post("/groups", json={"id": "made-by-pub", "name": "x"}, headers=pub).status_code == 403
    assert client.patch(f"/groups/{OWNER}", json={"max_layers": 999}, headers=pub).status_code == 403
    issued = client.post(f"/groups/{OWNER}/tokens", json={"subject": "new@owner", "role": "editor"}, headers=pub)
    assert issued.status_code == 201
    me = client.get("/me", headers=bearer(issued.json()["token"])).json()
    assert me == {"subject": "new@owner", "staff": False, "groups": {OWNER: "editor"}}


def test_an_overlay_can_never_take_a_city_layers_place(client: TestClient, people: dict[str, str]) -> None:
    walk = geojson_bytes([({"name": "x"}, point(-114.08, 51.05))])
    shadow = upload(client, people["staff"], "w.geojson", walk, id="communities", title="x", group=OWNER)
    assert shadow.status_code == 409
    for who in ("editor", "staff"):
        assert replace(client, people[who], "communities", "w.geojson", walk).status_code == 403
    assert client.patch("/collections/wards", json={"visibility": "public"},
                        headers=bearer(people["publisher"])).status_code == 403  # fmt: skip


def test_near_me_searches_a_groups_overlays_by_default_and_leaves_its_boundaries_to_here(
    client: TestClient, people: dict[str, str]
) -> None:
    spot = {"lon": -114.2, "lat": 51.2}
    ring = [[-114.21, 51.19], [-114.19, 51.19], [-114.19, 51.21], [-114.21, 51.21], [-114.21, 51.19]]
    zone = {"type": "Polygon", "coordinates": [ring]}
    files = {
        "share seed fair": ("events", geojson_bytes([({"name": "seed fair"}, point(**spot))])),
        "share patrol zones": ("boundaries", geojson_bytes([({"name": "zone 1"}, zone)])),
    }
    for layer, (category, data) in files.items():
        made = upload(client, people["editor"], "f.geojson", data, id=layer, title=layer, group=OWNER,
                      category=category)  # fmt: skip
        assert made.status_code == 201, made.text
    viewer = bearer(people["viewer"])

    def near(headers: dict[str, str]) -> set[str]:
        found = client.get("/nearby", params={**spot, "limit": 100}, headers=headers).json()["features"]
        return {f["properties"]["layer"] for f in found}

    assert "share seed fair" in near(viewer) and "share patrol zones" not in near(viewer)
    here = client.get("/here", params=spot, headers=viewer).json()["features"]
    assert "share patrol zones" in {f["properties"]["layer"] for f in here}
    assert not {"share seed fair", "share patrol zones"} & near({})  # the group's own, until made public
    moved = client.patch(f"/collections/{quote('share patrol zones', safe='')}", json={"category": "community"},
                         headers=bearer(people["editor"]))  # fmt: skip
    assert moved.status_code == 200 and "share patrol zones" in near(viewer)


def test_unpublished_layers_vanish_for_everyone_and_staff_bring_them_back(
    client: TestClient, people: dict[str, str]
) -> None:
    assert client.delete(f"/collections/{L}", headers=bearer(people["editor"])).status_code == 403
    assert client.delete(f"/collections/{L}", headers=bearer(people["publisher"])).status_code == 204
    assert status(client, people["publisher"]) == 404 and status(client, people["staff"]) == 404
    walk = geojson_bytes([({"name": "x"}, point(-114.08, 51.05))])
    taken = upload(client, people["editor"], "w.geojson", walk, id=LAYER, title="again", group=OWNER)
    assert taken.status_code == 409  # an unpublished layer keeps its id
    assert client.post(f"/collections/{L}/restore", headers=bearer(people["publisher"])).status_code == 403
    restored = client.post(f"/collections/{L}/restore", headers=bearer(people["staff"]))
    assert restored.status_code == 200 and status(client, people["viewer"]) == 200


def test_tokens_never_show_in_answers_or_logs(
    client: TestClient, people: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = people["editor"]
    answers = [
        client.get("/me", headers=bearer(secret + "x")),
        client.get(f"/me?access_token={secret}"),
        client.get(f"/collections/{L}", headers=bearer(secret)),
        client.patch(f"/collections/{L}", json={"visibility": "public"}, headers=bearer(secret)),
        client.get(f"/groups/{OWNER}/tokens", headers=bearer(people["publisher"])),
    ]
    for answer in answers:
        assert secret not in answer.text and people["publisher"] not in answer.text
    # The test client logs the URLs it asks for (that is the client, not the server): leave its records out.
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert any(r.name.startswith("httpx") for r in caplog.records)
    assert secret not in logged and secret[3:20] not in logged
