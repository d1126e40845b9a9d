"""API tokens: bearer tokens stored only as SHA-256 digests, resolved to a `Principal`."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from psycopg import AsyncConnection, Connection, sql

from layers.catalogue.models import GROUPS_TABLE, MEMBERSHIPS_TABLE, TOKENS_TABLE
from layers.catalogue.visibility import Principal
from layers.sqlcompose import Slot, render

TOKEN_PREFIX = "gs_"
TOKEN_BYTES = 32

_INSERT_TOKEN = render(
    sql.SQL("INSERT INTO {} (token_sha256, subject, is_staff, label) VALUES ({}, {}, {}, {})").format(
        TOKENS_TABLE, *map(Slot, ("digest", "subject", "is_staff", "label"))
    )
)
_ENSURE_GROUP = render(
    sql.SQL("INSERT INTO {} (id, name) VALUES ({}, {}) ON CONFLICT (id) DO NOTHING").format(
        GROUPS_TABLE, Slot("id"), Slot("id")
    )
)
_MEMBER = render(
    sql.SQL(
        "INSERT INTO {} (group_id, subject, role) VALUES ({}, {}, {}) "
        "ON CONFLICT (group_id, subject) DO UPDATE SET role = EXCLUDED.role"
    ).format(MEMBERSHIPS_TABLE, Slot("group"), Slot("subject"), Slot("role"))
)
PRINCIPAL_QUERY = render(
    sql.SQL(
        """
        SELECT t.subject, t.is_staff,
               coalesce(array_agg(m.group_id) FILTER (WHERE m.group_id IS NOT NULL), '{{}}') AS groups
        FROM {tokens} AS t LEFT JOIN {memberships} AS m ON m.subject = t.subject
        WHERE t.token_sha256 = {digest} AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())
        GROUP BY t.subject, t.is_staff
        """
    ).format(tokens=TOKENS_TABLE, memberships=MEMBERSHIPS_TABLE, digest=Slot("digest"))
)


def digest(token: str) -> bytes:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).digest()


def create_token(
    conn: Connection[Any],
    subject: str,
    *,
    groups: dict[str, str] | None = None,
    is_staff: bool = False,
    label: str | None = None,
) -> str:
    """Issue a token for `subject`, adding its group memberships ({group id: role}); returns the token once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    with conn.transaction():
        conn.execute(_INSERT_TOKEN, {"digest": digest(token), "subject": subject, "is_staff": is_staff, "label": label})
        for group, role in (groups or {}).items():
            conn.execute(_ENSURE_GROUP, {"id": group})
            conn.execute(_MEMBER, {"group": group, "subject": subject, "role": role})
    return token


async def principal_for_token(conn: AsyncConnection[Any], token: str) -> Principal | None:
    """The caller a token stands for, or None for an unknown, revoked or expired token."""
    cur = await conn.execute(PRINCIPAL_QUERY, {"digest": digest(token)})
    row = await cur.fetchone()
    if row is None:
        return None
    return Principal(subject=row[0], is_staff=row[1], groups=frozenset(row[2]))
