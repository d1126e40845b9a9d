"""API tokens resolve to principals; revoked and unknown tokens resolve to nobody."""

from __future__ import annotations

import asyncio

import psycopg
from psycopg import sql

from layers.access.tokens import digest, principal_for_token
from layers.catalogue.standing import STILL_STANDS, Standing
from layers.sqlcompose import render
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


def _stands(conn: psycopg.Connection, claim: Standing, group: str | None) -> bool:
    row = conn.execute(render(sql.SQL("SELECT {}").format(STILL_STANDS)), claim.values(group)).fetchone()
    assert row is not None
    return bool(row[0])


def test_a_write_confirms_what_a_token_stood_for_as_a_lookup_reads_it(
    database_url: str, conn: psycopg.Connection
) -> None:
    """`STILL_STANDS` (checked inside a feature edit's statement) holds exactly while a lookup would give the same
    subject, staff flag and role in the layer's group."""
    token = issue(database_url, "cy@stands", {"stand-a": "editor", "stand-b": "viewer"})
    principal = asyncio.run(_resolve(database_url, token))
    assert principal is not None and principal.subject is not None
    claim = Standing(digest(token), principal.subject, principal.is_staff, principal.roles)
    assert _stands(conn, claim, "stand-a") and _stands(conn, claim, "stand-b")
    assert _stands(conn, claim, None)  # a City layer: no role in any group is claimed
    assert _stands(conn, claim, "stand-c")  # no role claimed in a group the subject is not in
    forged = [  # each with the group its claim is checked for
        (Standing(digest(token), "someone@else", False, principal.roles), "stand-a"),
        (Standing(digest(token), principal.subject, True, principal.roles), "stand-a"),
        (Standing(digest(token), principal.subject, False, {"stand-a": "publisher"}), "stand-a"),
        (Standing(digest(token), principal.subject, False, {"stand-c": "editor"}), "stand-c"),
        (Standing(digest("gs_not-a-real-token"), principal.subject, False, principal.roles), "stand-a"),
    ]
    assert not any(_stands(conn, forgery, group) for forgery, group in forged)
    conn.execute(
        "UPDATE geoserver.memberships SET role = 'viewer' WHERE subject = 'cy@stands' AND group_id = 'stand-a'"
    )
    assert not _stands(conn, claim, "stand-a") and _stands(conn, claim, "stand-b")
    conn.execute("UPDATE geoserver.api_tokens SET expires_at = now() - interval '1 second' WHERE token_sha256 = %s",
                 [digest(token)])  # fmt: skip
    assert not _stands(conn, claim, "stand-b")
    conn.execute("UPDATE geoserver.api_tokens SET expires_at = NULL, revoked_at = now() WHERE token_sha256 = %s",
                 [digest(token)])  # fmt: skip
    assert not _stands(conn, claim, "stand-b")


def test_a_token_a_group_issues_stands_for_that_groups_role_only(database_url: str, conn: psycopg.Connection) -> None:
    issue(database_url, "di@stands", {"scope-c": "editor", "scope-d": "editor"})
    scoped = issue(database_url, "di@stands", scope="scope-c")
    principal = asyncio.run(_resolve(database_url, scoped))
    assert principal is not None and principal.roles == {"scope-c": "editor"}
    claim = Standing(digest(scoped), "di@stands", False, principal.roles)
    assert _stands(conn, claim, "scope-c") and _stands(conn, claim, "scope-d")  # no role claimed in scope-d
    assert not _stands(conn, Standing(digest(scoped), "di@stands", False, {"scope-d": "editor"}), "scope-d")


def test_a_staff_token_stands_for_staff_until_revoked(database_url: str, conn: psycopg.Connection) -> None:
    token = issue(database_url, "eve@stands", {"stand-e": "viewer"}, staff=True)
    principal = asyncio.run(_resolve(database_url, token))
    assert principal is not None and principal.is_staff
    claim = Standing.of(digest(token), principal)
    assert _stands(conn, claim, None) and _stands(conn, claim, "stand-e")
    assert not _stands(conn, Standing(digest(token), "eve@stands", False, principal.roles), None)
    conn.execute("UPDATE geoserver.api_tokens SET revoked_at = now() WHERE token_sha256 = %s", [digest(token)])
    assert not _stands(conn, claim, None)
