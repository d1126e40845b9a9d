"""Groups and their members: who belongs to which community group, with which role, and the group's quotas."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import class_row

from layers.catalogue.models import GROUPS_TABLE, MEMBERSHIPS_TABLE
from layers.catalogue.visibility import ROLES
from layers.errors import Conflict, InvalidParameter, NotFound
from layers.sqlcompose import Slot, render

GROUP_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")  # safe in a URL, a visibility string and a log line
QUOTAS = ("max_upload_mb", "max_features", "max_layers", "uploads_per_hour")


@dataclass(frozen=True)
class Group:
    """A group as stored; `contact` is for City staff's eyes only."""

    id: str
    name: str
    name_fr: str | None
    contact: str | None
    max_upload_mb: int | None
    max_features: int | None
    max_layers: int | None
    uploads_per_hour: int | None
    require_if_match: bool
    created_at: datetime

    def name_in(self, lang: str) -> str:
        """The name in `lang`, English when there is none."""
        return self.name_fr if lang == "fr" and self.name_fr else self.name


@dataclass(frozen=True)
class Member:
    """One subject's role in a group."""

    subject: str
    role: str


_GROUP_COLUMNS = sql.SQL(
    "id, name, name_fr, contact, max_upload_mb, max_features, max_layers, uploads_per_hour, require_if_match, "
    "created_at"
)
_INSERT = render(
    sql.SQL("INSERT INTO {} (id, name, name_fr, contact) VALUES ({}, {}, {}, {}) ON CONFLICT (id) DO NOTHING").format(
        GROUPS_TABLE, Slot("id"), Slot("name"), Slot("name_fr"), Slot("contact")
    )
)
_GET = render(sql.SQL("SELECT {} FROM {} WHERE id = {}").format(_GROUP_COLUMNS, GROUPS_TABLE, Slot("id")))
_LIST = render(
    sql.SQL("SELECT {} FROM {} WHERE {}::text[] IS NULL OR id = ANY({}::text[]) ORDER BY id").format(
        _GROUP_COLUMNS, GROUPS_TABLE, Slot("ids"), Slot("ids")
    )
)
_MEMBERS = render(
    sql.SQL("SELECT subject, role FROM {} WHERE group_id = {} ORDER BY subject").format(
        MEMBERSHIPS_TABLE, Slot("group")
    )
)
_SET_MEMBER = render(
    sql.SQL(
        "INSERT INTO {} (group_id, subject, role) VALUES ({}, {}, {}) "
        "ON CONFLICT (group_id, subject) DO UPDATE SET role = EXCLUDED.role"
    ).format(MEMBERSHIPS_TABLE, Slot("group"), Slot("subject"), Slot("role"))
)
_REMOVE_MEMBER = render(
    sql.SQL("DELETE FROM {} WHERE group_id = {} AND subject = {}").format(
        MEMBERSHIPS_TABLE, Slot("group"), Slot("subject")
    )
)


def check_group_id(value: str) -> str:
    """A group id: lower-case letters, digits and inner hyphens, up to 63 characters."""
    if not isinstance(value, str) or not GROUP_ID.fullmatch(value):
        raise InvalidParameter(
            "a group id is 1 to 63 lower-case letters, digits and hyphens (not at either end)", parameter="id"
        )
    return value


def check_role(value: str) -> str:
    """One of the roles."""
    if value not in ROLES:
        raise InvalidParameter(f"role must be one of {', '.join(ROLES)}", parameter="role")
    return value


def _text(value: str | None, parameter: str, *, required: bool = False, most: int = 200) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > most or "\x00" in value:
        raise InvalidParameter(f"{parameter} is a text of 1 to {most} characters", parameter=parameter)
    return value.strip()


async def create_group(
    conn: AsyncConnection[Any], group_id: str, name: str, *, name_fr: str | None = None, contact: str | None = None
) -> Group:
    """A new group; Conflict when the id is taken."""
    values = {
        "id": check_group_id(group_id), "name": _text(name, "name", required=True),
        "name_fr": _text(name_fr, "name_fr"), "contact": _text(contact, "contact", most=500),
    }  # fmt: skip
    cur = await conn.execute(_INSERT, values)
    if cur.rowcount == 0:
        raise Conflict(f"a group named {group_id!r} exists already", parameter="id")
    return await get_group(conn, group_id)


async def get_group(conn: AsyncConnection[Any], group_id: str) -> Group:
    """A group by id; NotFound when there is none."""
    async with conn.cursor(row_factory=class_row(Group)) as cur:
        await cur.execute(_GET, {"id": group_id})
        group = await cur.fetchone()
    if group is None:
        raise NotFound(f"no group named {group_id[:80]!r}", parameter="groupId")
    return group


async def list_groups(conn: AsyncConnection[Any], ids: list[str] | None = None) -> list[Group]:
    """Every group, or those among `ids`."""
    async with conn.cursor(row_factory=class_row(Group)) as cur:
        await cur.execute(_LIST, {"ids": ids})
        return await cur.fetchall()


async def update_group(conn: AsyncConnection[Any], group_id: str, changes: dict[str, Any]) -> Group:
    """Change a group's names, contact, quotas or `require_if_match` (None clears a quota)."""
    allowed = {"name", "name_fr", "contact", "require_if_match", *QUOTAS}
    for name, value in changes.items():
        if name not in allowed:
            raise InvalidParameter(f"{name[:40]!r} cannot be changed", parameter=name[:40])
        if (
            name in QUOTAS
            and value is not None
            and (not isinstance(value, int) or isinstance(value, bool) or value < 0)
        ):
            raise InvalidParameter(f"{name} is a whole number, or null for the server's default", parameter=name)
        if name == "require_if_match" and not isinstance(value, bool):
            raise InvalidParameter("require_if_match is true or false", parameter=name)
        if name in ("name", "name_fr", "contact"):
            _text(value, name, required=name == "name", most=500)
    await get_group(conn, group_id)
    if changes:
        statement = sql.SQL("UPDATE {} SET {} WHERE id = {}").format(
            GROUPS_TABLE,
            sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(n), Slot(n)) for n in changes),
            Slot("group_id"),
        )
        await conn.execute(render(statement), {**changes, "group_id": group_id})
    return await get_group(conn, group_id)


async def list_members(conn: AsyncConnection[Any], group_id: str) -> list[Member]:
    """The group's members and their roles, by subject."""
    async with conn.cursor(row_factory=class_row(Member)) as cur:
        await cur.execute(_MEMBERS, {"group": group_id})
        return await cur.fetchall()


async def set_member(conn: AsyncConnection[Any], group_id: str, subject: str, role: str) -> Member:
    """Add a member, or change a member's role."""
    subject_text = _text(subject, "subject", required=True)
    assert subject_text is not None
    await conn.execute(_SET_MEMBER, {"group": group_id, "subject": subject_text, "role": check_role(role)})
    return Member(subject_text, role)


async def remove_member(conn: AsyncConnection[Any], group_id: str, subject: str) -> bool:
    """Take a subject out of a group; their tokens lose the group's rights at once. False when not a member."""
    cur = await conn.execute(_REMOVE_MEMBER, {"group": group_id, "subject": subject})
    return cur.rowcount > 0
