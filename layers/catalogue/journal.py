"""What the catalogue tells others: the audit log (who did what, when) and change notices (NOTIFY).

Each function returns a statement and its values, to run on the caller's connection (blocking or async) inside the
caller's transaction: an audit entry exists exactly when its change committed, and a notice is delivered at
commit, so listeners never hear of a change that was rolled back.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql

from layers.catalogue.models import AUDIT_TABLE, CHANGE_CHANNEL
from layers.sqlcompose import Slot, render

Statement = tuple[bytes, dict[str, Any]]

_AUDIT = render(
    sql.SQL("INSERT INTO {} (actor, action, layer_id, group_id, detail) VALUES ({}, {}, {}, {}, {})").format(
        AUDIT_TABLE, Slot("actor"), Slot("action"), Slot("layer"), Slot("group"), Slot("detail")
    )
)
_NOTIFY = render(sql.SQL("SELECT pg_notify({}, {})").format(sql.Literal(CHANGE_CHANNEL), Slot("payload")))


def audit(
    actor: str, action: str, layer_id: str | None, detail: dict[str, Any], *, group_id: str | None = None
) -> Statement:
    """One audit entry."""
    values = {"actor": actor, "action": action, "layer": layer_id, "group": group_id, "detail": json.dumps(detail)}
    return _AUDIT, values


def announce(change: dict[str, Any]) -> Statement:
    """A notice to every listening server of a change to the catalogue, sent at commit."""
    return _NOTIFY, {"payload": json.dumps(change)}


_LIST = render(
    sql.SQL(
        "SELECT id, at, actor, action, layer_id, group_id, detail FROM {} "
        "WHERE ({layer}::text IS NULL OR layer_id = {layer}) AND ({group}::text IS NULL OR group_id = {group}) "
        "AND ({actor}::text IS NULL OR actor = {actor}) AND ({since}::timestamptz IS NULL OR at >= {since}) "
        "AND ({until}::timestamptz IS NULL OR at < {until}) ORDER BY id DESC LIMIT {limit} OFFSET {offset}"
    ).format(
        AUDIT_TABLE,
        layer=Slot("layer"),
        group=Slot("group"),
        actor=Slot("actor"),
        since=Slot("since"),
        until=Slot("until"),
        limit=Slot("limit"),
        offset=Slot("offset"),
    )  # fmt: skip
)


async def list_audit(
    conn: AsyncConnection[Any],
    *,
    layer: str | None = None,
    group: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Audit entries matching the filters, newest first."""
    values = {"layer": layer, "group": group, "actor": actor, "since": since, "until": until, "limit": limit,
              "offset": offset}  # fmt: skip
    rows = await (await conn.execute(_LIST, values)).fetchall()
    return [
        {"id": r[0], "at": r[1].isoformat().replace("+00:00", "Z"), "actor": r[2], "action": r[3], "layer": r[4],
         "group": r[5], "detail": r[6]}
        for r in rows
    ]  # fmt: skip
