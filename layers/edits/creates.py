"""Creating features: one or a whole batch in one statement, so a batch is stored whole or not at all.

A layer whose features were numbered at load (`fid`) numbers new ones after the largest, deleted ones included (their
ids stay theirs: they can be restored); a layer with its own id field needs the id in each feature, and refuses one
that exists (409).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb

from layers.catalogue.models import CHANGES_TABLE, HISTORY_TABLE
from layers.catalogue.records import Layer
from layers.edits.schema import CheckedFeature, editable
from layers.edits.writes import LATEST_VERSION, Who, Written, lock_new_features
from layers.errors import Conflict, InvalidParameter
from layers.queries.features import ROW_ETAG, row_attributes
from layers.sqlcompose import Slot, StatementCache, render

_SQL_TYPES = {
    "integer": "bigint",
    "number": "double precision",
    "string": "text",
    "boolean": "boolean",
    "datetime": "timestamptz",
    "date": "date",
    "object": "jsonb",
}
_WKB = "gs_wkb"  # the recordset's geometry column (hex WKB)
_N = "gs_n"  # the recordset's position column, so ids and answers keep the batch's order


def generates_ids(layer: Layer) -> bool:
    """True when the server numbers the layer's features (a layer loaded without an id field)."""
    return layer.id_column == "fid" and layer.id_kind == "integer"


async def create(
    conn: AsyncConnection[Any], layer: Layer, features: list[CheckedFeature], who: Who, statements: StatementCache
) -> list[Written]:
    """Store new features (all or none), each in history (version 1, or the next version of a deleted feature whose
    id it is given) and as a change in the feed. Statements are composed once per layer version and set of fields
    (`statements` keeps them)."""
    # New ids (and the check that given ones are free) must not race another batch on the same layer.
    await lock_new_features(conn, layer)
    ids = await _new_ids(conn, layer, features, statements)
    names = tuple(n for n in editable(layer) if any(n in f.properties for f in features))
    rows = [
        {_N: n, layer.id_column: fid, **{k: _json(f.properties.get(k)) for k in names}, _WKB: f.geometry.hex()}
        for n, (fid, f) in enumerate(zip(ids, features, strict=True))
        if f.geometry is not None
    ]
    text = statements.get(("edits.create", layer.id, layer.version, names), lambda: _insert(layer, names))
    values = {"rows": json.dumps(rows), "layer": layer.id, "actor": who.actor, "request": who.request_id}
    found = await (await conn.execute(text, values)).fetchall()
    await conn.execute(*who.audit(layer, "feature.create", features=len(found)))
    return [Written(json.loads(fid), int(version), f'"{etag}"', int(change)) for fid, etag, change, version in found]


def _insert(layer: Layer, names: tuple[str, ...]) -> bytes:
    """The batch insert for features that set `names` (the rest of the public fields stay NULL)."""
    recordset = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t))
        for c, t in [
            (_N, "int"),
            (layer.id_column, _SQL_TYPES[layer.id_kind]),
            *((n, _SQL_TYPES[layer.field(n).kind]) for n in names),
            (_WKB, "text"),
        ]
    )
    columns = [sql.Identifier(c) for c in (layer.id_column, *names)]
    g = sql.Identifier(layer.geometry_column)
    # A feature is version 1, unless its id had versions before (a deleted feature's id, given again): then it
    # continues that history.
    return render(
        sql.SQL(
            "WITH input AS (SELECT * FROM jsonb_to_recordset({rows}::jsonb) AS x({recordset})), "
            "new AS (INSERT INTO {table} AS t ({columns}, {g}) "
            "SELECT {columns}, ST_GeomFromWKB(decode({wkb}, 'hex'), 4326) FROM input ORDER BY {n} RETURNING t.*), "
            "v AS (SELECT new.{id} AS gs_id, {latest}({layer}, to_jsonb(new.{id})::text) + 1 AS gs_version FROM new), "
            "h AS (INSERT INTO {history} (layer_id, fid, version, op, attributes, geom, actor, request_id) "
            "SELECT {layer}, to_jsonb(new.{id})::text, v.gs_version, 'create', {attributes}, new.{g}, {actor}, "
            "{request} FROM new JOIN v ON v.gs_id = new.{id}), "
            "c AS (INSERT INTO {changes} (layer_id, fid, op, version, bbox) SELECT {layer}, to_jsonb(new.{id})::text, "
            "'create', v.gs_version, json_build_array(ST_XMin(new.{g}), ST_YMin(new.{g}), ST_XMax(new.{g}), "
            "ST_YMax(new.{g})) FROM new JOIN v ON v.gs_id = new.{id} RETURNING fid, version, id) "
            "SELECT to_jsonb(t.{id})::text, {etag}, c.id, c.version FROM new AS t "
            "JOIN c ON c.fid = to_jsonb(t.{id})::text ORDER BY c.id"
        ).format(
            rows=Slot("rows"),
            recordset=recordset,
            table=layer.table,
            columns=sql.SQL(", ").join(columns),
            g=g,
            wkb=sql.Identifier(_WKB),
            n=sql.Identifier(_N),
            history=HISTORY_TABLE,
            layer=Slot("layer"),
            id=sql.Identifier(layer.id_column),
            attributes=row_attributes(layer, sql.Identifier("new")),
            latest=LATEST_VERSION,
            actor=Slot("actor"),
            request=Slot("request"),
            changes=CHANGES_TABLE,
            etag=ROW_ETAG,
        )
    )


async def _new_ids(
    conn: AsyncConnection[Any], layer: Layer, features: list[CheckedFeature], statements: StatementCache
) -> list[Any]:
    """The batch's ids: numbered after the largest, or as given (each present, distinct and free)."""
    id_column = sql.Identifier(layer.id_column)
    if generates_ids(layer):
        # After the largest id in the table and among deleted features (still in history, restorable as themselves).
        statement = sql.SQL(
            "SELECT greatest((SELECT max({id}) FROM {table}), "
            "(SELECT max(fid::bigint) FROM {history} WHERE layer_id = {layer} AND deleted), 0)"
        ).format(id=id_column, table=layer.table, history=HISTORY_TABLE, layer=Slot("layer"))
        text = statements.get(("edits.next_id", layer.id, layer.version), lambda: render(statement))
        row = await (await conn.execute(text, {"layer": layer.id})).fetchone()
        start = int(row[0]) if row else 0
        return list(range(start + 1, start + 1 + len(features)))
    ids = [f.fid for f in features]
    missing = next((i for i, fid in enumerate(ids) if fid is None), None)
    if missing is not None:
        raise InvalidParameter(f"feature {missing}: the id ({layer.id_column}) is required", parameter="id")
    if len(set(ids)) != len(ids):
        raise InvalidParameter("two features of the batch have the same id", parameter="id")
    statement = sql.SQL("SELECT {} FROM {} WHERE {} = ANY({})").format(id_column, layer.table, id_column, Slot("ids"))
    taken = await (await conn.execute(render(statement), {"ids": ids})).fetchone()
    if taken is not None:
        raise Conflict(f"a feature with the id {taken[0]!r} exists: replace it with PUT", parameter="id")
    return ids


def _json(value: Any) -> Any:
    """A checked value as jsonb_to_recordset reads it."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Jsonb):
        return value.obj
    return value
