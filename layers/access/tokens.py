"""API tokens: bearer tokens stored only as SHA-256 digests, listed and revoked by a prefix, resolved to a Principal.

A token stands for a subject. One issued by a group (`group_id` set) carries its subject's role in that group only,
so a group's publisher can never hand out another group's rights; one issued by City staff carries all of the
subject's memberships. Roles are read from the memberships at every request (a feature's PUT and PATCH confirm them
inside the write instead, `layers.catalogue.standing`): a change, a revocation or an expiry takes effect on every
server at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import class_row

from layers.catalogue.models import MEMBERSHIPS_TABLE, TOKENS_TABLE
from layers.catalogue.visibility import Principal
from layers.errors import InvalidParameter
from layers.sqlcompose import Slot, render

TOKEN_PREFIX = "gs_"
TOKEN_BYTES = 32
PREFIX_CHARS = 12  # what lists show and revocation takes: "gs_" and 9 random characters


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown of a token: never the token itself."""

    prefix: str | None
    subject: str
    is_staff: bool
    group_id: str | None
    open311: bool
    label: str | None
    created_by: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


_INSERT = render(
    sql.SQL(
        "INSERT INTO {} (token_sha256, prefix, subject, is_staff, group_id, open311, label, created_by, expires_at) "
        "VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {})"
    ).format(
        TOKENS_TABLE,
        *map(Slot, ("digest", "prefix", "subject", "staff", "group", "open311", "label", "by", "expires")),
    )
)
_PRINCIPAL = render(
    sql.SQL(
        """
        SELECT t.subject, t.is_staff,
               coalesce(jsonb_object_agg(m.group_id, m.role) FILTER (WHERE m.group_id IS NOT NULL), '{{}}') AS roles
        FROM {tokens} AS t LEFT JOIN {memberships} AS m
          ON m.subject = t.subject AND (t.group_id IS NULL OR m.group_id = t.group_id)
        WHERE t.token_sha256 = {digest} AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())
        GROUP BY t.id
        """
    ).format(tokens=TOKENS_TABLE, memberships=MEMBERSHIPS_TABLE, digest=Slot("digest"))
)
_API_KEY = render(
    sql.SQL(
        """
        SELECT coalesce(t.prefix, 'id:' || t.id), t.subject, t.is_staff, t.open311, t.group_id,
               t.group_id IS NOT NULL AND EXISTS (
                   SELECT 1 FROM {memberships} AS m WHERE m.subject = t.subject AND m.group_id = t.group_id)
        FROM {tokens} AS t
        WHERE t.token_sha256 = {digest} AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())
        """
    ).format(tokens=TOKENS_TABLE, memberships=MEMBERSHIPS_TABLE, digest=Slot("digest"))
)
_COLUMNS = sql.SQL(
    "prefix, subject, is_staff, group_id, open311, label, created_by, created_at, expires_at, revoked_at"
)
_LIST = render(
    sql.SQL("SELECT {} FROM {} WHERE {}::text IS NULL OR group_id = {} ORDER BY created_at, id").format(
        _COLUMNS, TOKENS_TABLE, Slot("group"), Slot("group")
    )
)
_REVOKE = render(
    sql.SQL(
        "UPDATE {} SET revoked_at = coalesce(revoked_at, now()) WHERE prefix = {} "
        "AND ({}::text IS NULL OR group_id = {}) RETURNING {}"
    ).format(TOKENS_TABLE, Slot("prefix"), Slot("group"), Slot("group"), _COLUMNS)
)


def digest(token: str) -> bytes:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).digest()


async def issue_token(
    conn: AsyncConnection[Any],
    subject: str,
    *,
    is_staff: bool = False,
    group_id: str | None = None,
    open311: bool = False,
    label: str | None = None,
    expires_at: datetime | None = None,
    created_by: str | None = None,
) -> tuple[str, str]:
    """A new token for `subject` (memberships are managed apart); returns the token, shown once, and its prefix."""
    if not subject.strip() or len(subject) > 200 or "\x00" in subject:
        raise InvalidParameter("a subject is 1 to 200 characters", parameter="subject")
    if label is not None and (len(label) > 200 or "\x00" in label):
        raise InvalidParameter("a label is at most 200 characters", parameter="label")
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    values = {
        "digest": digest(token), "prefix": token[:PREFIX_CHARS], "subject": subject, "staff": is_staff,
        "group": group_id, "open311": open311, "label": label, "by": created_by, "expires": expires_at,
    }  # fmt: skip
    await conn.execute(_INSERT, values)
    return token, token[:PREFIX_CHARS]


async def principal_for_token(conn: AsyncConnection[Any], token: str) -> Principal | None:
    """The caller a token stands for, or None for an unknown, revoked or expired token.

    The lookup is by the token's SHA-256 digest: no stored secret is ever compared byte by byte."""
    return await principal_for_digest(conn, digest(token))


async def principal_for_digest(conn: AsyncConnection[Any], token_digest: bytes) -> Principal | None:
    """As `principal_for_token`, for a token already digested."""
    cur = await conn.execute(_PRINCIPAL, {"digest": token_digest})
    row = await cur.fetchone()
    if row is None:
        return None
    return Principal(subject=row[0], is_staff=row[1], roles=dict(row[2]))


@dataclass(frozen=True)
class ApiKey:
    """A valid token used as an Open311 `api_key`: who holds it and whether it may submit service requests."""

    prefix: str
    subject: str
    is_staff: bool
    open311: bool
    group_id: str | None
    group_member: bool  # the subject still belongs to the group that issued the token

    @property
    def may_submit_311(self) -> bool:
        """Keys issued with --open311, a group's token whose subject is still a member, and City staff's."""
        return self.open311 or self.is_staff or self.group_member


async def api_key(conn: AsyncConnection[Any], token: str) -> ApiKey | None:
    """The key a token stands for, or None for an unknown, revoked or expired one (looked up by digest)."""
    cur = await conn.execute(_API_KEY, {"digest": digest(token)})
    row = await cur.fetchone()
    return None if row is None else ApiKey(*row)


async def list_tokens(conn: AsyncConnection[Any], group_id: str | None = None) -> list[TokenInfo]:
    """Every token (a group's only, when given), oldest first: prefixes, never tokens."""
    async with conn.cursor(row_factory=class_row(TokenInfo)) as cur:
        await cur.execute(_LIST, {"group": group_id})
        return await cur.fetchall()


async def revoke_token(conn: AsyncConnection[Any], prefix: str, group_id: str | None = None) -> TokenInfo | None:
    """Revoke the token with this prefix (only among a group's tokens, when given); None when there is none."""
    async with conn.cursor(row_factory=class_row(TokenInfo)) as cur:
        await cur.execute(_REVOKE, {"prefix": prefix, "group": group_id})
        return await cur.fetchone()
