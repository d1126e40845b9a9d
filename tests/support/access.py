"""Tokens and group memberships for tests, set up directly in the database."""

from __future__ import annotations

import asyncio

import psycopg
from psycopg import sql

from layers.access.groups import set_member
from layers.access.tokens import issue_token
from layers.catalogue.models import GROUPS_TABLE
from layers.sqlcompose import Slot, render

_ENSURE_GROUP = render(
    sql.SQL("INSERT INTO {} (id, name) VALUES ({}, {}) ON CONFLICT (id) DO NOTHING").format(
        GROUPS_TABLE, Slot("id"), Slot("id")
    )
)


def issue(
    database_url: str,
    subject: str,
    roles: dict[str, str] | None = None,
    *,
    staff: bool = False,
    scope: str | None = None,
    open311: bool = False,
) -> str:
    """A token for `subject`, after giving the subject these roles ({group id: role}) in groups made as needed."""

    async def work() -> str:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            for group, role in (roles or {}).items():
                await conn.execute(_ENSURE_GROUP, {"id": group})
                await set_member(conn, group, subject, role)
            token, _ = await issue_token(
                conn, subject, is_staff=staff, group_id=scope, open311=open311, created_by="tests"
            )
            return token

    return asyncio.run(work())
