"""A feature's versions: the list, one version as GeoJSON (public fields only), and restoring one as a new version."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import class_row

from layers.catalogue.models import CHANGES_TABLE, HISTORY_TABLE
from layers.catalogue.records import Layer
from layers.edits.writes import (
    Who,
    Written,
    check_precondition,
    fid_text,
    if_match_required,
    lock_new_features,
    locked,
)
from layers.errors import NotFound
from layers.queries.features import ROW_ETAG, row_attributes
from layers.sqlcompose import Binder, Slot, render

HISTORY_CHUNK = 2_000


@dataclass(frozen=True)
class Version:
    """What the list of a feature's versions says of each."""

    version: int
    op: str
    deleted: bool
    at: datetime
    actor: str


_PUBLIC_JSON = sql.SQL(
    '\'{{"type":"Feature","id":\' || h.fid || \',"geometry":\' || coalesce(ST_AsGeoJSON(h.geom, 8, 0), \'null\') '
    "|| ',\"properties\":' || coalesce((SELECT jsonb_object_agg(key, value) FROM jsonb_each(h.attributes) "
    "WHERE key = ANY({public}::text[]))::text, '{{}}') || '}}'"
)


def _public(layer: Layer) -> list[str]:
    return [name for name in layer.field_names if name != layer.id_column]


async def versions(conn: AsyncConnection[Any], layer: Layer, fid: Any) -> list[Version]:
    """Every version of a feature, oldest first; a feature never written through the API has one, as loaded."""
    statement = sql.SQL(
        "SELECT version, op, deleted, at, actor FROM {} WHERE layer_id = {} AND fid = {} ORDER BY version"
    ).format(HISTORY_TABLE, Slot("layer"), Slot("fid"))
    async with conn.cursor(row_factory=class_row(Version)) as cur:
        await cur.execute(render(statement), {"layer": layer.id, "fid": fid_text(fid)})
        found = await cur.fetchall()
    if found:
        return found
    if await locked(conn, layer, fid) is None:
        raise NotFound("no such feature in this collection", parameter="featureId")
    return [Version(1, "load", False, layer.updated_at, "load")]


async def version(conn: AsyncConnection[Any], layer: Layer, fid: Any, number: int) -> tuple[str, Version] | None:
    """One version as GeoJSON text (public fields only), or None when there is no such version in history."""
    statement = sql.SQL(
        "SELECT {feature}, h.version, h.op, h.deleted, h.at, h.actor FROM {history} AS h "
        "WHERE h.layer_id = {layer} AND h.fid = {fid} AND h.version = {number}"
    ).format(
        feature=_PUBLIC_JSON.format(public=Slot("public")),
        history=HISTORY_TABLE,
        layer=Slot("layer"),
        fid=Slot("fid"),
        number=Slot("number"),
    )
    values = {"public": _public(layer), "layer": layer.id, "fid": fid_text(fid), "number": number}
    row = await (await conn.execute(render(statement), values)).fetchone()
    return (str(row[0]), Version(*row[1:])) if row else None


async def history(conn: AsyncConnection[Any], layer: Layer) -> AsyncIterator[str]:
    """Every version of every feature of the layer written through the API, as GeoJSON features (public fields,
    plus `version`, `op`, `deleted`, `at`, `actor` under `history`), oldest first, a chunk at a time."""
    statement = sql.SQL(
        "SELECT {feature}, json_build_object('version', h.version, 'op', h.op, 'deleted', h.deleted, 'at', h.at, "
        "'actor', h.actor)::text FROM {history} AS h WHERE h.layer_id = {layer} ORDER BY h.id"
    ).format(feature=_PUBLIC_JSON.format(public=Slot("public")), history=HISTORY_TABLE, layer=Slot("layer"))
    async with conn.transaction(), conn.cursor(name="layer_history") as cur:
        await cur.execute(render(statement), {"public": _public(layer), "layer": layer.id})
        while rows := await cur.fetchmany(HISTORY_CHUNK):
            for feature, meta in rows:
                yield feature[:-1] + ',"history":' + meta + "}"


async def restore(
    conn: AsyncConnection[Any], layer: Layer, fid: Any, number: int, *, if_match: str | None, who: Who
) -> Written:
    """Make version `number` current again, as a new version (bringing a deleted feature back)."""
    statement = sql.SQL("SELECT id FROM {} WHERE layer_id = {} AND fid = {} AND version = {}").format(
        HISTORY_TABLE, Slot("layer"), Slot("fid"), Slot("number")
    )
    row = await (
        await conn.execute(render(statement), {"layer": layer.id, "fid": fid_text(fid), "number": number})
    ).fetchone()
    if row is None:
        raise NotFound(f"no version {number} of this feature", parameter="version")
    history_id = int(row[0])
    found = await locked(conn, layer, fid)
    if found is None:  # deleted: bring it back as nobody else does at the same time, then look again
        await lock_new_features(conn, layer)
        found = await locked(conn, layer, fid)
    if found is not None:
        check_precondition(found[0], if_match, await if_match_required(conn, layer))
    latest = await conn.execute(
        render(
            sql.SQL("SELECT max(version) FROM {} WHERE layer_id = {} AND fid = {}").format(
                HISTORY_TABLE, Slot("layer"), Slot("fid")
            )
        ),
        {"layer": layer.id, "fid": fid_text(fid)},
    )
    new_version = int((await latest.fetchone() or [0])[0]) + 1
    columns = await _stored_columns(conn, layer)
    bind = Binder()
    source = sql.SQL(
        "(SELECT r.*, h.geom AS gs_geom FROM {history} AS h, jsonb_populate_record(NULL::{table}, "
        "h.attributes) AS r WHERE h.id = {hid})"
    ).format(history=HISTORY_TABLE, table=layer.table, hid=bind(history_id))
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    picked = sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in columns)
    g = sql.Identifier(layer.geometry_column)
    write = (
        sql.SQL(
            "UPDATE {table} AS t SET ({cols}, {g}) = (SELECT {picked}, s.gs_geom FROM {source} AS s) "
            "WHERE t.{id} = {fid} RETURNING t.*"
        )
        if found is not None
        else sql.SQL(
            "INSERT INTO {table} AS t ({cols}, {g}) SELECT {picked}, s.gs_geom FROM {source} AS s RETURNING t.*"
        )
    ).format(
        table=layer.table,
        cols=cols,
        g=g,
        picked=picked,
        source=source,
        id=sql.Identifier(layer.id_column),
        fid=bind(fid),
    )
    return await _record_restore(conn, layer, fid, write, bind, new_version, found, who)


async def _record_restore(
    conn: AsyncConnection[Any],
    layer: Layer,
    fid: Any,
    write: sql.Composable,
    bind: Binder,
    version: int,
    found: tuple[str, bytes] | None,
    who: Who,
) -> Written:
    old = bind(found[1]) if found is not None else sql.SQL("NULL::bytea")
    g = sql.Identifier(layer.geometry_column)
    statement = sql.SQL(
        "WITH new AS ({write}), "
        "h AS (INSERT INTO {history} (layer_id, fid, version, op, attributes, geom, actor, request_id) "
        "SELECT {layer}, {fid_text}, {version}, 'restore', {attributes}, new.{g}, {actor}, {request} FROM new), "
        "c AS (INSERT INTO {changes} (layer_id, fid, op, version, bbox) SELECT {layer}, {fid_text}, 'restore', "
        "{version}, (SELECT json_build_array(ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)) FROM (SELECT "
        "ST_Extent(x) AS b FROM (VALUES (ST_GeomFromWKB({old}, 4326)), (new.{g})) AS v(x)) AS e) "
        "FROM new RETURNING id) "
        "SELECT {etag}, (SELECT id FROM c) FROM new AS t"
    ).format(
        write=write,
        history=HISTORY_TABLE,
        layer=bind(layer.id),
        fid_text=bind(fid_text(fid)),
        version=bind(version),
        attributes=row_attributes(layer, sql.Identifier("new")),
        g=g,
        actor=bind(who.actor),
        request=bind(who.request_id),
        changes=CHANGES_TABLE,
        old=old,
        etag=ROW_ETAG,
    )
    row = await (await conn.execute(render(statement), bind.params)).fetchone()
    assert row is not None
    await conn.execute(*who.audit(layer, "feature.restore", fid=fid, version=version))
    return Written(fid, version, f'"{row[0]}"', int(row[1]))


async def _stored_columns(conn: AsyncConnection[Any], layer: Layer) -> list[str]:
    """The table's own columns but its geometries and generated ones (their names stay in this process)."""
    statement = sql.SQL(
        "SELECT attname FROM pg_attribute WHERE attrelid = {table}::regclass AND attnum > 0 AND NOT attisdropped "
        "AND attgenerated = '' AND attname <> {g} ORDER BY attnum"
    ).format(table=Slot("table"), g=Slot("g"))
    name = sql.Identifier(layer.table_schema, layer.table_name).as_string(None)
    rows = await (await conn.execute(render(statement), {"table": name, "g": layer.geometry_column})).fetchall()
    return [r[0] for r in rows]


def decode_fid(text: str) -> Any:
    """A feature id as history stores it, back to its value."""
    return json.loads(text)
