"""Replacing or updating one feature in one statement: one round trip, one implicit transaction.

The statement locks the row, checks If-Match (and whether the layer or its group requires it) against the row's
entity tag, keeps the loaded state as version 1 before a feature's first write, updates the row, keeps the new
version in history, appends the change to the feed and the write to the audit log, and answers the stored feature
with its new tag. Nothing is written unless the checks pass; the answer says which failed.
"""

from __future__ import annotations

import json
from typing import Any

from psycopg import AsyncConnection, sql

from layers.catalogue.models import AUDIT_TABLE, CHANGES_TABLE, GROUPS_TABLE, HISTORY_TABLE
from layers.catalogue.records import Layer
from layers.edits.schema import CheckedFeature
from layers.edits.writes import Who, Written, fid_text, if_match_tags, row_attributes
from layers.errors import InvalidParameter, NotFound, PreconditionFailed, PreconditionRequired
from layers.queries.features import ROW_ETAG
from layers.queries.geojson import feature_json
from layers.sqlcompose import Binder, render

_STATEMENT = """
WITH old AS (SELECT t AS r, {etag} AS etag FROM {table} AS t WHERE t.{id} = {fid} FOR UPDATE),
rule AS (SELECT {layer_rule} OR coalesce((SELECT require_if_match FROM {groups} WHERE id = {group}), false)
         AS required),
ok AS (SELECT old.* FROM old, rule WHERE CASE WHEN {tags}::text[] IS NULL THEN NOT rule.required
       ELSE old.etag = ANY({tags}::text[]) OR '*' = ANY({tags}::text[]) END),
prev AS (SELECT coalesce(max(version), 0) AS v FROM {history} WHERE layer_id = {layer} AND fid = {fid_text}),
ver AS (SELECT greatest(prev.v, 1) + 1 AS v FROM prev),
first AS (INSERT INTO {history} (layer_id, fid, version, op, attributes, geom, at, actor, request_id)
          SELECT {layer}, {fid_text}, 1, 'load', {old_attributes}, (ok.r).{g}, {loaded_at}, 'load', NULL
          FROM ok, prev WHERE prev.v = 0),
new AS (UPDATE {table} AS t SET {sets} FROM ok WHERE t.{id} = {fid} RETURNING t.*),
h AS (INSERT INTO {history} (layer_id, fid, version, op, attributes, geom, actor, request_id)
      SELECT {layer}, {fid_text}, ver.v, {op}, {new_attributes}, new.{g}, {actor}, {request} FROM new, ver),
c AS (INSERT INTO {changes} (layer_id, fid, op, version, bbox)
      SELECT {layer}, {fid_text}, {op}, ver.v, json_build_array(ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b))
      FROM new, ver, ok, LATERAL (SELECT ST_Extent(x) AS b FROM (VALUES ((ok.r).{g}), (new.{g})) AS v(x)) AS e
      RETURNING id),
a AS (INSERT INTO {audit} (actor, action, layer_id, group_id, detail)
      SELECT {actor}, {action}, {layer}, {group}, json_build_object('fid', {fid_json}::jsonb, 'version', ver.v,
      'request', {request}) FROM new, ver)
SELECT f.found, f.allowed, f.required, n.etag, n.version, n.change, n.feature
FROM (SELECT (SELECT count(*) FROM old) AS found, (SELECT count(*) FROM ok) AS allowed,
      (SELECT required FROM rule) AS required) AS f
LEFT JOIN (SELECT {etag} AS etag, (SELECT v FROM ver) AS version, (SELECT id FROM c) AS change,
           {feature} AS feature FROM new AS t) AS n ON true
"""


def _row_attributes(layer: Layer) -> sql.Composable:
    """The old row's columns but its geometries, from the locked row's composite value."""
    drop = [layer.geometry_column, *([layer.geometry_3857_column] if layer.geometry_3857_column else [])]
    return sql.SQL(" - ").join([sql.SQL("to_jsonb(ok.r)"), *map(sql.Literal, drop)])


async def change(
    conn: AsyncConnection[Any],
    layer: Layer,
    fid: Any,
    sets: list[sql.Composable],
    bind: Binder,
    *,
    op: str,
    if_match: str | None,
    who: Who,
) -> tuple[Written, str]:
    """Write the SET items to one feature; the written version and the stored feature's GeoJSON text."""
    if not sets:
        raise InvalidParameter("nothing to change: send properties or a geometry", parameter="body")
    g = sql.Identifier(layer.geometry_column)
    statement = sql.SQL(_STATEMENT).format(
        table=layer.table, id=sql.Identifier(layer.id_column), fid=bind(fid), groups=GROUPS_TABLE,
        layer_rule=sql.Literal(layer.require_if_match), group=bind(layer.group_id), tags=bind(if_match_tags(if_match)),
        history=HISTORY_TABLE, layer=bind(layer.id), fid_text=bind(fid_text(fid)),
        old_attributes=_row_attributes(layer), g=g, loaded_at=bind(layer.updated_at), sets=sql.SQL(", ").join(sets),
        op=bind(op), new_attributes=row_attributes(layer, "new"), actor=bind(who.actor), request=bind(who.request_id),
        changes=CHANGES_TABLE, audit=AUDIT_TABLE, action=bind(f"feature.{op}"), fid_json=bind(json.dumps(fid)),
        feature=feature_json(layer, g), etag=ROW_ETAG,
    )  # fmt: skip
    row = await (await conn.execute(render(statement), bind.params)).fetchone()
    assert row is not None
    found, allowed, required, etag, version, change_id, feature = row
    if not found:
        raise NotFound("no such feature in this collection", parameter="featureId")
    if not allowed:
        if if_match is None and required:
            raise PreconditionRequired("this layer requires If-Match: send the ETag of the version you edit")
        raise PreconditionFailed("the feature changed since you read it: read it again (its new ETag) and retry")
    return Written(fid, int(version), f'"{etag}"', int(change_id)), str(feature)


def assignments(layer: Layer, feature: CheckedFeature, bind: Binder, *, replace: bool) -> list[sql.Composable]:
    """SET items: the properties sent (all public ones with `replace`, missing ones set to NULL) and the geometry."""
    names = [f.name for f in layer.fields if f.name != layer.id_column] if replace else list(feature.properties)
    sets: list[sql.Composable] = [
        sql.SQL("{} = {}").format(sql.Identifier(name), bind(feature.properties.get(name)))
        for name in names
        if name in feature.properties or replace
    ]
    if feature.geometry is not None:
        geometry = sql.SQL("{} = ST_GeomFromWKB({}, 4326)").format(
            sql.Identifier(layer.geometry_column), bind(feature.geometry)
        )
        sets.append(geometry)
    return sets
