"""API tokens resolve to principals; revoked and unknown tokens resolve to nobody."""

from __future__ import annotations

import asyncio

import psycopg

from layers.access.tokens import digest, principal_for_token
from tests.support.access import issue


async def _resolve(url: str, token: str):  # type: ignore[no-untyped-def]
    async with await psycopg.AsyncConnection.connect(url) as conn:
        return await principal_for_token(conn, token)


def test_a_token_resolves_to_its_subject_and_groups(database_url: str, conn: psycopg.Connection) -> None:
    token = issue(database_url, "ann@bowness", {"bowness-community": "editor", "parks-friends": "viewer"})
    principal = asyncio.run(_resolve(database_url, token))
    assert principal is not None
    assert principal.subject == "ann@bowness" and not principal.is_staff
    assert principal.roles == {"bowness-community": "editor", "parks-friends": "viewer"}
    stored = conn.execute("SELECT count(*) FROM geoserver.api_tokens WHERE token_sha256 = %s", [digest(token)])
    assert stored.fetchone() == (1,)
    plain = conn.execute(
        "SELECT count(*) FROM geoserver.api_tokens WHERE encode(token_sha256, 'escape') LIKE %s", [f"%{token}%"]
    )
    assert plain.fetchone() == (0,)  # only the digest is stored


def test_revoked_and_unknown_tokens_resolve_to_nobody(database_url: str, conn: psycopg.Connection) -> None:
    token = issue(database_url, "staff@city", staff=True)
    assert asyncio.run(_resolve(database_url, token)).is_staff  # type: ignore[union-attr]
    conn.execute("UPDATE geoserver.api_tokens SET revoked_at = now() WHERE token_sha256 = %s", [digest(token)])
    assert asyncio.run(_resolve(database_url, token)) is None
    assert asyncio.run(_resolve(database_url, "gs_not-a-real-token")) is None


def test_a_token_a_group_issues_carries_that_groups_role_only(database_url: str) -> None:
    issue(database_url, "bo@two-groups", {"scope-a": "publisher", "scope-b": "publisher"})
    scoped = issue(database_url, "bo@two-groups", scope="scope-a")
    principal = asyncio.run(_resolve(database_url, scoped))
    assert principal is not None and principal.roles == {"scope-a": "publisher"}


def test_an_expired_token_resolves_to_nobody(database_url: str, conn: psycopg.Connection) -> None:
    token = issue(database_url, "late@city")
    conn.execute("UPDATE geoserver.api_tokens SET expires_at = now() - interval '1 second' WHERE token_sha256 = %s",
                 [digest(token)])  # fmt: skip
    assert asyncio.run(_resolve(database_url, token)) is None
