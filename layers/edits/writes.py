"""Writing one feature (replace, update, delete, restore): one transaction that locks the row, checks If-Match,
writes it, keeps the new version in the layer's history, appends to the change feed and to the audit log.

History keeps every version of a feature written through the API: version 1 is the feature as first stored (as
loaded, or as created), each write adds the next. A delete adds a version marked deleted, holding the last state,
so it can be restored. Private columns are kept in history too; they never leave the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql

from layers.catalogue.journal import Statement, audit
from layers.catalogue.models import CATALOG_SCHEMA, CHANGES_TABLE, GROUPS_TABLE, HISTORY_TABLE
from layers.catalogue.records import Layer
from layers.errors import NotFound, PreconditionFailed, PreconditionRequired
from layers.queries.features import ROW_ETAG, row_attributes
from layers.sqlcompose import Binder, Slot, render

# A feature's latest version in history (0 for none), read with a snapshot of its own (migration 0009): called once
# the row is locked, it sees the concurrent write that held the lock.
LATEST_VERSION = sql.Identifier(CATALOG_SCHEMA, "latest_version")


@dataclass(frozen=True)
class Who:
    """Who writes, under which request (both go into history and the audit log)."""

    actor: str
    request_id: str

    def audit(self, layer: Layer, action: str, **detail: Any) -> Statement:
        """The audit entry of this write to `layer` (its group's too): the detail given, and the request."""
        return audit(self.actor, action, layer.id, {**detail, "request": self.request_id}, group_id=layer.group_id)


@dataclass(frozen=True)
class Written:
    """A feature's state after a write: its id, version, entity tag, the change's feed id, and the transaction its
    change notice names (None when the write sent none)."""

    fid: Any
    version: int
    etag: str | None
    change_id: int
    xact: str | None = None


def fid_text(fid: Any) -> str:
    """A feature id as history and the feed store it: its JSON text (42, or "P1")."""
    return json.dumps(fid, ensure_ascii=False)  # as PostgreSQL writes to_jsonb(id)::text


_LAYER_LOCK = render(sql.SQL("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))").format(Slot("key")))


async def lock_new_features(conn: AsyncConnection[Any], layer: Layer) -> None:
    """Until this transaction ends, no other one adds features to the layer (creates, restores of deleted ones):
    a feature that does not exist has no row to lock."""
    await conn.execute(_LAYER_LOCK, {"key": f"geoserver.layer:{layer.id}"})


async def locked(conn: AsyncConnection[Any], layer: Layer, fid: Any) -> tuple[str, bytes] | None:
    """Lock the stored feature for this transaction; its entity tag and geometry (None when it does not exist)."""
    statement = sql.SQL("SELECT {etag}, ST_AsBinary({g}) FROM {table} AS t WHERE {id} = {fid} FOR UPDATE").format(
        etag=ROW_ETAG,
        g=sql.Identifier(layer.geometry_column),
        table=layer.table,
        id=sql.Identifier(layer.id_column),
        fid=Slot("fid"),
    )
    row = await (await conn.execute(render(statement), {"fid": fid})).fetchone()
    return (f'"{row[0]}"', bytes(row[1])) if row else None


def if_match_tags(if_match: str | None) -> list[str] | None:
    """The entity tags an If-Match header names, without quotes (as the write statements compare them)."""
    if if_match is None:
        return None
    return [t.strip().removeprefix("W/").strip('"') for t in if_match.split(",") if t.strip()]


def check_precondition(etag: str, if_match: str | None, required: bool) -> None:
    """412 when If-Match names other versions; 428 when it is missing but required."""
    tags = if_match_tags(if_match)
    if tags is None:
        if required:
            raise PreconditionRequired("this layer requires If-Match: send the ETag of the version you edit")
        return
    if "*" not in tags and etag.strip('"') not in tags:
        raise PreconditionFailed("the feature changed since you read it: read it again (its new ETag) and retry")


async def if_match_required(conn: AsyncConnection[Any], layer: Layer) -> bool:
    """Whether writes to this layer must send If-Match: the layer's manifest or its group says so."""
    if layer.require_if_match or layer.group_id is None:
        return layer.require_if_match
    statement = sql.SQL("SELECT require_if_match FROM {} WHERE id = {}").format(GROUPS_TABLE, Slot("id"))
    row = await (await conn.execute(render(statement), {"id": layer.group_id})).fetchone()
    return bool(row and row[0])


async def current_version(conn: AsyncConnection[Any], layer: Layer, fid: Any) -> int | None:
    """The feature's newest version in history, None when it was never written through the API."""
    statement = sql.SQL("SELECT max(version) FROM {} WHERE layer_id = {} AND fid = {}").format(
        HISTORY_TABLE, Slot("layer"), Slot("fid")
    )
    row = await (await conn.execute(render(statement), {"layer": layer.id, "fid": fid_text(fid)})).fetchone()
    return row[0] if row else None


async def remember_first(conn: AsyncConnection[Any], layer: Layer, fid: Any, who: Who) -> int:
    """Before a loaded feature's first write, keep it as version 1; returns the version the write follows."""
    version = await current_version(conn, layer, fid)
    if version is not None:
        return int(version)
    statement = sql.SQL(
        "INSERT INTO {history} (layer_id, fid, version, op, attributes, geom, at, actor, request_id) "
        "SELECT {layer}, {fid_text}, 1, 'load', {attributes}, t.{g}, {loaded_at}, 'load', NULL FROM {table} AS t "
        "WHERE {id} = {fid}"
    ).format(
        history=HISTORY_TABLE,
        layer=Slot("layer"),
        fid_text=Slot("fid_text"),
        attributes=row_attributes(layer, sql.Identifier("t")),
        g=sql.Identifier(layer.geometry_column),
        loaded_at=Slot("loaded_at"),
        table=layer.table,
        id=sql.Identifier(layer.id_column),
        fid=Slot("fid"),
    )
    values = {"layer": layer.id, "fid_text": fid_text(fid), "fid": fid, "loaded_at": layer.updated_at}
    await conn.execute(render(statement), values)
    return 1


async def delete(conn: AsyncConnection[Any], layer: Layer, fid: Any, *, if_match: str | None, who: Who) -> Written:
    """Delete one feature, keeping its last state in history as a deleted version (restorable)."""
    found = await locked(conn, layer, fid)
    if found is None:
        raise NotFound("no such feature in this collection", parameter="featureId")
    etag, _ = found
    check_precondition(etag, if_match, await if_match_required(conn, layer))
    version = await remember_first(conn, layer, fid, who) + 1
    bind = Binder()
    statement = sql.SQL(
        "WITH old AS (DELETE FROM {table} AS t WHERE {id} = {fid} RETURNING t.*), "
        "h AS (INSERT INTO {history} (layer_id, fid, version, op, deleted, attributes, geom, actor, request_id) "
        "SELECT {layer}, {fid_text}, {version}, 'delete', true, {attributes}, old.{g}, {actor}, {request} FROM old) "
        "INSERT INTO {changes} (layer_id, fid, op, version, bbox) SELECT {layer}, {fid_text}, 'delete', {version}, "
        "json_build_array(ST_XMin(old.{g}), ST_YMin(old.{g}), ST_XMax(old.{g}), ST_YMax(old.{g})) FROM old RETURNING id"
    ).format(
        table=layer.table,
        id=sql.Identifier(layer.id_column),
        fid=bind(fid),
        history=HISTORY_TABLE,
        layer=bind(layer.id),
        fid_text=bind(fid_text(fid)),
        version=bind(version),
        attributes=row_attributes(layer, sql.Identifier("old")),
        g=sql.Identifier(layer.geometry_column),
        actor=bind(who.actor),
        request=bind(who.request_id),
        changes=CHANGES_TABLE,
    )
    row = await (await conn.execute(render(statement), bind.params)).fetchone()
    assert row is not None
    await conn.execute(*who.audit(layer, "feature.delete", fid=fid, version=version))
    return Written(fid, version, None, int(row[0]))
