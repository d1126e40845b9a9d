"""A feature's PUT and PATCH take the caller this worker remembers and confirm it inside the write: a revoked or
expired token, a lower role or a member taken out of the group writes nothing, on the very next edit; a higher role
is honoured at once. Each test first makes sure the worker does remember the token, so that the remembered path is
the one under test.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient

from layers.access.tokens import digest
from tests.support.access import issue
from tests.support.layers import point
from tests.support.uploads import bearer, geojson_bytes, upload

GROUP = "rights-club"
LAYER = "rights club stalls"
L = quote(LAYER, safe="")
PATCH = "application/merge-patch+json"


@pytest.fixture(scope="module")
def staff(client: TestClient, database_url: str) -> str:
    token = issue(database_url, "gis@rights", staff=True)
    assert client.post("/groups", json={"id": GROUP, "name": "Rights club"}, headers=bearer(token)).status_code == 201
    founder = issue(database_url, "founder@rights", {GROUP: "editor"})
    stalls = geojson_bytes([({"name": f"stall {i}"}, point(-114.07, 51.04 + i / 1000)) for i in range(1, 6)])
    made = upload(client, founder, "s.geojson", stalls, id=LAYER, title="Stalls", group=GROUP)
    assert made.status_code == 201, made.text
    return token


def member(client: TestClient, staff: str, subject: str, role: str | None) -> None:
    """Give the subject this role in the group, or take it out (None), through the API."""
    if role is None:
        gone = client.delete(f"/groups/{GROUP}/members/{quote(subject, safe='')}", headers=bearer(staff))
        assert gone.status_code == 204, gone.text
        return
    made = client.post(f"/groups/{GROUP}/members", json={"subject": subject, "role": role}, headers=bearer(staff))
    assert made.status_code in (200, 201), made.text


def group_token(client: TestClient, staff: str, subject: str, role: str) -> tuple[str, str]:
    """A token the group issues for a new member: (token, prefix)."""
    made = client.post(f"/groups/{GROUP}/tokens", json={"subject": subject, "role": role}, headers=bearer(staff))
    assert made.status_code == 201, made.text
    return made.json()["token"], made.json()["prefix"]


def rename(client: TestClient, token: str, fid: int, name: str) -> Any:
    return client.patch(f"/collections/{L}/items/{fid}", json={"properties": {"name": name}},
                        headers={**bearer(token), "Content-Type": PATCH})  # fmt: skip


def stored(client: TestClient, staff: str, fid: int) -> tuple[str, int]:
    """The feature's name as stored, and how many versions history holds of it."""
    name = client.get(f"/collections/{L}/items/{fid}", headers=bearer(staff)).json()["properties"]["name"]
    versions = client.get(f"/collections/{L}/items/{fid}/versions", headers=bearer(staff)).json()["versions"]
    return name, len(versions)


def remembered(client: TestClient, token: str) -> bool:
    memory = client.app.state.geoserver.token_memory  # type: ignore[attr-defined]
    return memory.get(digest(token)) is not None


def test_a_revoked_token_writes_nothing_on_the_next_edit(client: TestClient, staff: str) -> None:
    token, prefix = group_token(client, staff, "rev@rights", "editor")
    assert rename(client, token, 1, "before").status_code == 200 and remembered(client, token)
    before = stored(client, staff, 1)
    assert client.delete(f"/groups/{GROUP}/tokens/{prefix}", headers=bearer(staff)).status_code == 204
    refused = rename(client, token, 1, "after revocation")
    assert refused.status_code == 401 and "revoked" in refused.json()["description"]
    assert stored(client, staff, 1) == before and not remembered(client, token)
    replacement = {"type": "Feature", "geometry": point(-114.07, 51.041), "properties": {"name": "put"}}
    put = client.put(f"/collections/{L}/items/1", headers=bearer(token), json=replacement)
    assert put.status_code == 401 and stored(client, staff, 1) == before


def test_an_expired_token_writes_nothing_on_the_next_edit(
    client: TestClient, staff: str, database_url: str, conn: psycopg.Connection
) -> None:
    token = issue(database_url, "exp@rights", {GROUP: "editor"})
    assert rename(client, token, 2, "before").status_code == 200 and remembered(client, token)
    before = stored(client, staff, 2)
    conn.execute("UPDATE geoserver.api_tokens SET expires_at = now() - interval '1 second' WHERE token_sha256 = %s",
                 [digest(token)])  # fmt: skip
    assert rename(client, token, 2, "after expiry").status_code == 401
    assert stored(client, staff, 2) == before


def test_a_lower_role_or_leaving_the_group_writes_nothing_on_the_next_edit(client: TestClient, staff: str) -> None:
    token, _ = group_token(client, staff, "down@rights", "editor")
    assert rename(client, token, 3, "before").status_code == 200 and remembered(client, token)
    before = stored(client, staff, 3)
    member(client, staff, "down@rights", "viewer")
    refused = rename(client, token, 3, "as a viewer")
    assert refused.status_code == 403 and "may read this layer but not edit it" in refused.json()["description"]
    assert stored(client, staff, 3) == before
    member(client, staff, "down@rights", "editor")
    assert rename(client, token, 3, "an editor again").status_code == 200
    assert rename(client, token, 3, "still an editor").status_code == 200 and remembered(client, token)
    member(client, staff, "down@rights", None)
    gone = rename(client, token, 3, "out of the group")
    assert gone.status_code == 404  # the group's layer is not public: unseen, as if it did not exist
    assert stored(client, staff, 3)[0] == "still an editor"


def test_a_higher_role_is_honoured_on_the_next_edit(client: TestClient, staff: str) -> None:
    token, _ = group_token(client, staff, "up@rights", "viewer")
    assert rename(client, token, 4, "as a viewer").status_code == 403 and remembered(client, token)
    member(client, staff, "up@rights", "editor")
    assert rename(client, token, 4, "as an editor").status_code == 200
    assert stored(client, staff, 4)[0] == "as an editor"


def test_errors_of_a_remembered_caller_are_those_of_a_fresh_lookup(client: TestClient, staff: str) -> None:
    token, _ = group_token(client, staff, "err@rights", "editor")
    assert rename(client, token, 5, "fine").status_code == 200 and remembered(client, token)
    stale = client.patch(f"/collections/{L}/items/5", json={"properties": {"name": "x"}},
                         headers={**bearer(token), "Content-Type": PATCH, "If-Match": '"stale"'})  # fmt: skip
    assert stale.status_code == 412
    unknown = client.patch(f"/collections/{L}/items/5", json={"properties": {"nope": 1}},
                           headers={**bearer(token), "Content-Type": PATCH})  # fmt: skip
    assert unknown.status_code == 400
    assert rename(client, token, 999, "missing").status_code == 404
    assert stored(client, staff, 5)[0] == "fine"
