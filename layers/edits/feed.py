"""The feed of changes: what was written to which feature, in order, for live subscribers and polling clients.

Each change is `{id, layer, fid, op, version, bbox, at}`: never a property value, so nothing private travels.
Changes are kept for RETENTION; a client away longer reloads the layer instead of catching up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, sql

from layers.catalogue.models import CHANGES_TABLE
from layers.queries.times import iso
from layers.sqlcompose import Slot, render

RETENTION = timedelta(days=7)
MAX_CHANGES = 1_000  # at the most per answer; the next one continues

_SINCE = render(
    sql.SQL(
        "SELECT id, layer_id, fid, op, version, bbox, at FROM {} WHERE layer_id = ANY({}::text[]) AND id > {} "
        "ORDER BY id LIMIT {}"
    ).format(CHANGES_TABLE, Slot("layers"), Slot("since"), Slot("limit"))
)
_LATEST = render(sql.SQL("SELECT coalesce(max(id), 0) FROM {}").format(CHANGES_TABLE))
_OLDEST = render(sql.SQL("SELECT min(id) FROM {}").format(CHANGES_TABLE))
_PURGE = render(sql.SQL("DELETE FROM {} WHERE at < now() - {}::interval").format(CHANGES_TABLE, Slot("keep")))


@dataclass(frozen=True)
class Change:
    """One change of one feature."""

    id: int
    layer: str
    fid: Any
    op: str
    version: int
    bbox: list[float] | None
    at: datetime

    def document(self) -> dict[str, Any]:
        """The change as the API writes it."""
        return {"id": self.id, "layer": self.layer, "fid": self.fid, "op": self.op, "version": self.version,
                "bbox": self.bbox, "at": iso(self.at)}  # fmt: skip


async def since(conn: AsyncConnection[Any], layer_ids: list[str], after: int, limit: int = MAX_CHANGES) -> list[Change]:
    """The changes of these layers after change `after`, oldest first."""
    values = {"layers": layer_ids, "since": after, "limit": limit}
    rows = await (await conn.execute(_SINCE, values)).fetchall()
    return [Change(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], r[6]) for r in rows]


async def latest(conn: AsyncConnection[Any]) -> int:
    """The id of the newest change (0 when there is none): where a new subscriber starts."""
    row = await (await conn.execute(_LATEST)).fetchone()
    return int(row[0]) if row else 0


async def oldest(conn: AsyncConnection[Any]) -> int | None:
    """The id of the oldest change still kept."""
    row = await (await conn.execute(_OLDEST)).fetchone()
    return int(row[0]) if row and row[0] is not None else None


async def purge(conn: AsyncConnection[Any]) -> int:
    """Forget changes older than RETENTION; returns how many."""
    cur = await conn.execute(_PURGE, {"keep": f"{int(RETENTION.total_seconds())} seconds"})
    return cur.rowcount
