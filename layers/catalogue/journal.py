"""What the catalogue tells others: the audit log (who did what, when) and change notices (NOTIFY).

Each function returns a statement and its values, to run on the caller's connection (blocking or async) inside the
caller's transaction: an audit entry exists exactly when its change committed, and a notice is delivered at
commit, so listeners never hear of a change that was rolled back.
"""

from __future__ import annotations

import json
from typing import Any

from psycopg import sql

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
