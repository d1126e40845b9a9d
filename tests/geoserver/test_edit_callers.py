"""A feature's PUT and PATCH take the caller this worker remembers and confirm it inside the write: a revoked or
expired token, a lower role or a member taken out of the group writes nothing on the very next edit, and learns
nothing a lookup would not have told it; a higher role is honoured at once. The database lookups are counted, so
each test knows which path served it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient

import geoserver.auth
from layers.access.tokens import digest
from layers.catalogue.visibility import Principal
from tests.support.access import issue
from tests.support.layers import point
from tests.support.uploads import bearer, geojson_bytes, upload

GROUP = "rights-club"
LAYER = "rights club stalls"
L = quote(LAYER, safe="")
PATCH = "application/merge-patch+json"


@pytest.fixture(scope="module")
def staff(client: TestClient, database_url: str) -> str:
    """A City staff token, once the group and its group-only layer of five stalls (ids 1-5) exist."""
    token = issue(database_url, "gis@rights", staff=True)
    assert client.post("/groups", json={"id": GROUP, "name": "Rights club"}, headers=bearer(token)).status_code == 201
    founder = issue(database_url, "founder@rights", {GROUP: "editor"})
    stalls = geojson_bytes([({"name": f"stall {i}"}, point(-114.07, 51.04 + i / 1000)) for i in range(1, 6)])
    made = upload(client, founder, "s.geojson", stalls, id=LAYER, title="Stalls", group=GROUP)
    assert made.status_code == 201, made.text
    return token


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """The digests of the tokens looked up in the database while the test runs (the staff token's too)."""
    seen: list[bytes] = []
    real = geoserver.auth.principal_for_digest

    async def counted(conn: Any, token_digest: bytes) -> Principal | None:
        seen.append(token_digest)
        return await real(conn, token_digest)

    monkeypatch.setattr(geoserver.auth, "principal_for_digest", counted)
    yield seen


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


def remembered_editor(client: TestClient, staff: str, subject: str, fid: int) -> tuple[str, str]:
    """A new editor's token (token, prefix), after a first edit of the feature, so that the worker remembers it."""
    token, prefix = group_token(client, staff, subject, "editor")
    assert rename(client, token, fid, "first edit").status_code == 200
    return token, prefix


def rename(client: TestClient, token: str, fid: int, name: str, **headers: str) -> Any:
    """PATCH the feature's name."""
    return client.patch(f"/collections/{L}/items/{fid}", json={"properties": {"name": name}},
                        headers={**bearer(token), "Content-Type": PATCH, **headers})  # fmt: skip


def replace(client: TestClient, token: str, fid: int, name: str) -> Any:
    """PUT the feature with a new name."""
    feature = {"type": "Feature", "geometry": point(-114.07, 51.04 + fid / 1000), "properties": {"name": name}}
    return client.put(f"/collections/{L}/items/{fid}", json=feature, headers=bearer(token))


def stored(client: TestClient, staff: str, fid: int) -> tuple[str, int]:
    """The feature's name as stored, and how many versions history holds of it."""
    name = client.get(f"/collections/{L}/items/{fid}", headers=bearer(staff)).json()["properties"]["name"]
    versions = client.get(f"/collections/{L}/items/{fid}/versions", headers=bearer(staff)).json()["versions"]
    return name, len(versions)


def memory(client: TestClient) -> Any:
    """The app's token memory."""
    return client.app.state.geoserver.token_memory  # type: ignore[attr-defined]


def test_a_remembered_caller_writes_without_a_lookup(client: TestClient, staff: str, lookups: list[bytes]) -> None:
    token, _ = group_token(client, staff, "fast@rights", "editor")
    assert rename(client, token, 1, "first").status_code == 200 and lookups.count(digest(token)) == 1
    assert rename(client, token, 1, "second").status_code == 200
    assert replace(client, token, 1, "third").status_code == 200
    assert lookups.count(digest(token)) == 1 and stored(client, staff, 1)[0] == "third"


def test_a_revoked_token_writes_and_learns_nothing_on_the_next_edit(
    client: TestClient, staff: str, lookups: list[bytes]
) -> None:
    token, prefix = remembered_editor(client, staff, "rev@rights", 2)
    before, remembered = stored(client, staff, 2), memory(client).get(digest(token))
    assert remembered is not None
    assert client.delete(f"/groups/{GROUP}/tokens/{prefix}", headers=bearer(staff)).status_code == 204
    probes = [
        lambda: replace(client, token, 2, "put after revocation"),
        lambda: rename(client, token, 2, "patch after revocation"),
        lambda: rename(client, token, 2, "x", **{"Content-Type": "text/plain"}),  # a bad body type: still 401
        lambda: client.patch(
            f"/collections/{L}/items/2",
            json={"properties": {"no_such_field": 1}},
            headers={**bearer(token), "Content-Type": PATCH},
        ),  # fmt: skip
        lambda: rename(client, token, 999, "no such feature"),
    ]
    for probe in probes:
        memory(client)[digest(token)] = remembered  # as if this worker had not heard yet
        lookups.clear()
        refused = probe()
        assert refused.status_code == 401 and "revoked" in refused.json()["description"], refused.text
        assert lookups.count(digest(token)) == 1 and memory(client).get(digest(token)) is None
    assert stored(client, staff, 2) == before


def test_an_expired_token_writes_nothing_on_the_next_edit(
    client: TestClient, staff: str, database_url: str, conn: psycopg.Connection
) -> None:
    token = issue(database_url, "exp@rights", {GROUP: "editor"})
    assert rename(client, token, 3, "before").status_code == 200 and memory(client).get(digest(token)) is not None
    before = stored(client, staff, 3)
    conn.execute("UPDATE geoserver.api_tokens SET expires_at = now() - interval '1 second' WHERE token_sha256 = %s",
                 [digest(token)])  # fmt: skip
    assert rename(client, token, 3, "after expiry").status_code == 401
    assert stored(client, staff, 3) == before


def test_a_lower_role_or_leaving_the_group_writes_and_learns_nothing(client: TestClient, staff: str) -> None:
    token, _ = remembered_editor(client, staff, "down@rights", 4)
    before, remembered = stored(client, staff, 4), memory(client).get(digest(token))
    member(client, staff, "down@rights", "viewer")
    refused = rename(client, token, 4, "as a viewer")
    assert refused.status_code == 403 and "may read this layer but not edit it" in refused.json()["description"]
    assert stored(client, staff, 4) == before
    member(client, staff, "down@rights", None)
    for body in ({"properties": {"name": "out of the group"}}, {"properties": {"no_such_field": 1}}):
        memory(client)[digest(token)] = remembered  # remembered as the editor it was
        gone = client.patch(f"/collections/{L}/items/4", json=body, headers={**bearer(token), "Content-Type": PATCH})
        assert gone.status_code == 404 and gone.json()["code"] == "not_found"  # unseen, not a 400 on its fields
    assert stored(client, staff, 4) == before


def test_a_higher_role_is_honoured_and_the_body_is_read_once(
    client: TestClient, staff: str, lookups: list[bytes]
) -> None:
    token, _ = group_token(client, staff, "up@rights", "viewer")
    assert rename(client, token, 5, "as a viewer").status_code == 403 and memory(client).get(digest(token))
    member(client, staff, "up@rights", "editor")
    assert rename(client, token, 5, "as an editor").status_code == 200
    member(client, staff, "up@rights", "publisher")  # still may edit: the write finds the claim stale and asks again
    lookups.clear()
    assert rename(client, token, 5, "as a publisher").status_code == 200
    assert lookups.count(digest(token)) == 1 and stored(client, staff, 5)[0] == "as a publisher"


def test_errors_of_a_remembered_caller_stand_when_a_lookup_agrees(
    client: TestClient, staff: str, lookups: list[bytes]
) -> None:
    token, _ = remembered_editor(client, staff, "err@rights", 1)
    lookups.clear()
    assert rename(client, token, 1, "x", **{"If-Match": '"stale"'}).status_code == 412
    unknown = client.patch(f"/collections/{L}/items/1", json={"properties": {"nope": 1}},
                           headers={**bearer(token), "Content-Type": PATCH})  # fmt: skip
    assert unknown.status_code == 400 and "nope" in unknown.json()["description"]
    assert rename(client, token, 999, "missing").status_code == 404
    assert lookups.count(digest(token)) == 3 and stored(client, staff, 1)[0] == "first edit"
