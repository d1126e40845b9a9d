"""What the catalogue tells others: the audit log (who did what, when) and change notices (NOTIFY).

Both run inside the caller's transaction: an audit entry exists exactly when its change committed, and a notice is
delivered at commit, so listeners never hear of a change that was rolled back.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg import sql

from layers.catalogue.models import AUDIT_TABLE, CHANGE_CHANNEL
from layers.sqlcompose import Slot, render

_AUDIT = render(
    sql.SQL("INSERT INTO {} (actor, action, layer_id, detail) VALUES ({}, {}, {}, {})").format(
        AUDIT_TABLE, Slot("actor"), Slot("action"), Slot("layer"), Slot("detail")
    )
)
_NOTIFY = render(sql.SQL("SELECT pg_notify({}, {})").format(sql.Literal(CHANGE_CHANNEL), Slot("payload")))


def audit(conn: psycopg.Connection[Any], actor: str, action: str, layer_id: str | None, detail: dict[str, Any]) -> None:
    """Write one audit entry in the current transaction."""
    conn.execute(_AUDIT, {"actor": actor, "action": action, "layer": layer_id, "detail": json.dumps(detail)})


def announce(conn: psycopg.Connection[Any], change: dict[str, Any]) -> None:
    """Tell every listening server of a change to the catalogue, at commit."""
    conn.execute(_NOTIFY, {"payload": json.dumps(change)})
