"""City staff change a request's status (`open`, `closed`) with notes: like an edit of the layer, the change is a
new version in the feature's history, a change in the feed and an audit entry, all in one transaction.
"""

from __future__ import annotations

import json
from typing import Any

from psycopg import AsyncConnection, sql

from layers.catalogue.journal import audit
from layers.catalogue.models import CHANGES_TABLE, HISTORY_TABLE, STATUS_TABLE
from layers.errors import InvalidParameter, NotFound
from layers.open311.places import RequestsLayer
from layers.open311.submission import CONTROL
from layers.queries.features import row_attributes
from layers.sqlcompose import Slot, render

STATUSES = ("open", "closed")
MAX_NOTES = 2000


def check_status(status: str | None, notes: str | None) -> tuple[str, str | None]:
    """A status GeoReport knows, and notes of a sensible size."""
    if status not in STATUSES:
        raise InvalidParameter("status must be open or closed", parameter="status")
    if notes is not None:
        notes = notes.strip() or None
    if notes is not None and len(notes) > MAX_NOTES:
        raise InvalidParameter(f"status_notes is at most {MAX_NOTES} characters", parameter="status_notes")
    if notes is not None and CONTROL.search(notes):
        raise InvalidParameter("status_notes holds characters that are not allowed", parameter="status_notes")
    return status, notes


_STATEMENT = """
WITH old AS (SELECT t AS r FROM {table} AS t WHERE t.{id} = {rid} FOR UPDATE),
prev AS (SELECT coalesce(max(version), 0) AS v FROM {history} WHERE layer_id = {layer} AND fid = {fid}),
first AS (INSERT INTO {history} (layer_id, fid, version, op, attributes, geom, at, actor, request_id)
          SELECT {layer}, {fid}, 1, 'load', {old_row}, (old.r).{g}, {loaded_at}, 'load', NULL
          FROM old, prev WHERE prev.v = 0),
new AS (UPDATE {table} AS t SET {status} = {value},
               {closed} = CASE WHEN {value} = 'closed' THEN coalesce(t.{closed}, now()) END
        FROM old WHERE t.{id} = {rid} RETURNING t.*),
ver AS (SELECT greatest(prev.v, 1) + 1 AS v FROM prev),
h AS (INSERT INTO {history} (layer_id, fid, version, op, attributes, geom, actor, request_id)
      SELECT {layer}, {fid}, ver.v, 'update', {new_row}, new.{g}, {actor}, NULL FROM new, ver),
c AS (INSERT INTO {changes} (layer_id, fid, op, version, bbox)
      SELECT {layer}, {fid}, 'update', ver.v,
             json_build_array(ST_XMin(new.{g}), ST_YMin(new.{g}), ST_XMax(new.{g}), ST_YMax(new.{g}))
      FROM new, ver),
n AS (INSERT INTO {notes} (request_id, status_notes, updated_at, updated_by) SELECT {rid}, {text}, now(), {actor}
      FROM new ON CONFLICT (request_id) DO UPDATE
      SET status_notes = EXCLUDED.status_notes, updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by)
SELECT ver.v FROM new, ver
"""


async def set_status(
    conn: AsyncConnection[Any], where: RequestsLayer, request_id: str, status: str, notes: str | None, actor: str
) -> int:
    """Set a request's status and notes; the version written. NotFound for a request the layer does not hold."""
    status, notes = check_status(status, notes)
    layer = where.layer
    statement = sql.SQL(_STATEMENT).format(
        table=layer.table, id=where.id, rid=Slot("rid"), history=HISTORY_TABLE, layer=Slot("layer"), fid=Slot("fid"),
        old_row=row_attributes(layer, sql.SQL("old.r")), g=where.geom, loaded_at=Slot("loaded_at"),
        status=where.column("status"), value=Slot("status"), closed=where.column("closed"),
        new_row=row_attributes(layer, sql.Identifier("new")), actor=Slot("actor"),
        changes=CHANGES_TABLE, notes=STATUS_TABLE, text=Slot("notes"),
    )  # fmt: skip
    values = {
        "rid": request_id, "layer": layer.id, "fid": json.dumps(request_id, ensure_ascii=False),
        "loaded_at": layer.updated_at, "status": status, "actor": actor, "notes": notes,
    }  # fmt: skip
    async with conn.transaction():
        found = await (await conn.execute(render(statement), values)).fetchone()
        if found is None:
            raise NotFound(f"service_request_id {request_id[:64]!r} was not found", parameter="service_request_id")
        detail = {"fid": request_id, "status": status, "version": found[0]}
        await conn.execute(*audit(actor, "open311.status", layer.id, detail))
    return int(found[0])
