"""Replacing or updating one feature in one statement: one round trip, one implicit transaction.

The statement confirms that the caller's token still stands for what the server took it for
(`layers.catalogue.standing`: a server may remember it rather than look it up for each edit), locks the row, checks
If-Match (and whether the layer or its group requires it) against the row's entity tag, keeps the loaded state as
version 1 before a feature's first write, numbers the new version once it holds the lock (so a write that waited for a
concurrent one follows it), updates the row, keeps the new version in history, appends the change to the feed and the
write to the audit log, and answers the stored feature with its new tag and the id of its transaction (which the
change notice names: the writer waits for that notice, not for one more of its own). Nothing is written unless the
checks pass; the answer says which failed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql

from layers.catalogue.models import AUDIT_TABLE, CHANGES_TABLE, GROUPS_TABLE, HISTORY_TABLE
from layers.catalogue.records import Layer
from layers.catalogue.standing import STILL_STANDS, NotConfirmed, Standing
from layers.edits.schema import CheckedFeature
from layers.edits.writes import LATEST_VERSION, Who, Written, fid_text, if_match_tags
from layers.errors import InvalidParameter, NotFound, PreconditionFailed, PreconditionRequired
from layers.queries.features import ROW_ETAG, row_attributes
from layers.queries.geojson import feature_json
from layers.sqlcompose import Slot, StatementCache, render

_STATEMENT = """
WITH caller AS (SELECT {still_stands} AS confirmed),
old AS (SELECT t AS r, {etag} AS etag FROM {table} AS t
        WHERE t.{id} = {fid} AND (SELECT confirmed FROM caller) FOR UPDATE),
rule AS (SELECT {layer_rule} OR coalesce((SELECT require_if_match FROM {groups} WHERE id = {group}), false)
         AS required),
ok AS (SELECT old.* FROM old, rule WHERE CASE WHEN {tags}::text[] IS NULL THEN NOT rule.required
       ELSE old.etag = ANY({tags}::text[]) OR '*' = ANY({tags}::text[]) END),
prev AS (SELECT {latest}({layer}, {fid_text}) AS v FROM ok),
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
      RETURNING id, CASE WHEN bbox->>0 IS NOT NULL THEN pg_current_xact_id()::text END AS xact),
a AS (INSERT INTO {audit} (actor, action, layer_id, group_id, detail)
      SELECT {actor}, {action}, {layer}, {group}, json_build_object('fid', {fid_json}::jsonb, 'version', ver.v,
      'request', {request}) FROM new, ver)
SELECT f.confirmed, f.found, f.allowed, f.required, n.etag, n.version, n.change, n.xact, n.feature
FROM (SELECT (SELECT confirmed FROM caller) AS confirmed, (SELECT count(*) FROM old) AS found,
      (SELECT count(*) FROM ok) AS allowed, (SELECT required FROM rule) AS required) AS f
LEFT JOIN (SELECT {etag} AS etag, (SELECT v FROM ver) AS version, (SELECT id FROM c) AS change,
           (SELECT xact FROM c) AS xact, {feature} AS feature FROM new AS t) AS n ON true
"""


@dataclass(frozen=True)
class Assignments:
    """What a write sets: the public fields by name, in order, and the geometry (WKB) when one was sent."""

    names: tuple[str, ...]
    values: tuple[Any, ...]
    geometry: bytes | None

    @property
    def shape(self) -> tuple[tuple[str, ...], bool]:
        """What the statement's text depends on (the values are bound)."""
        return self.names, self.geometry is not None


def assignments(layer: Layer, feature: CheckedFeature, *, replace: bool) -> Assignments:
    """The properties sent (all public ones with `replace`, missing ones set to NULL) and the geometry."""
    names = [f.name for f in layer.fields if f.name != layer.id_column] if replace else list(feature.properties)
    chosen = tuple(name for name in names if name in feature.properties or replace)
    values = tuple(feature.properties.get(name) for name in chosen)
    return Assignments(chosen, values, feature.geometry)


def _statement(layer: Layer, shape: tuple[tuple[str, ...], bool]) -> bytes:
    names, has_geometry = shape
    g = sql.Identifier(layer.geometry_column)
    sets = [sql.SQL("{} = {}").format(sql.Identifier(name), Slot(f"s{i}")) for i, name in enumerate(names)]
    if has_geometry:
        sets.append(sql.SQL("{} = ST_GeomFromWKB({}, 4326)").format(g, Slot("geometry")))
    return render(
        sql.SQL(_STATEMENT).format(
            table=layer.table,
            id=sql.Identifier(layer.id_column),
            fid=Slot("fid"),
            groups=GROUPS_TABLE,
            layer_rule=sql.Literal(layer.require_if_match),
            group=Slot("group"),
            tags=Slot("tags"),
            history=HISTORY_TABLE,
            layer=Slot("layer"),
            fid_text=Slot("fid_text"),
            old_attributes=row_attributes(layer, sql.SQL("ok.r")),  # the locked row's composite value
            g=g,
            loaded_at=Slot("loaded_at"),
            sets=sql.SQL(", ").join(sets),
            op=Slot("op"),
            new_attributes=row_attributes(layer, sql.Identifier("new")),
            actor=Slot("actor"),
            request=Slot("request"),
            changes=CHANGES_TABLE,
            audit=AUDIT_TABLE,
            action=Slot("action"),
            fid_json=Slot("fid_json"),
            feature=feature_json(layer, g),
            etag=ROW_ETAG,
            latest=LATEST_VERSION,
            still_stands=STILL_STANDS,
        )
    )


async def change(
    conn: AsyncConnection[Any],
    layer: Layer,
    fid: Any,
    sets: Assignments,
    statements: StatementCache,
    *,
    op: str,
    if_match: str | None,
    who: Who,
    standing: Standing,
) -> tuple[Written, str]:
    """Write the assignments to one feature; the written version and the stored feature's GeoJSON text.

    `standing` is what the caller's token was taken for; unless it still stands, nothing is written (NotConfirmed).

    The statement is composed once per layer version and set of fields written (`statements` keeps it)."""
    if not sets.names and sets.geometry is None:
        raise InvalidParameter("nothing to change: send properties or a geometry", parameter="body")
    text = statements.get(("edits.change", layer.id, layer.version, sets.shape), lambda: _statement(layer, sets.shape))
    values: dict[str, Any] = {
        "fid": fid, "group": layer.group_id, "tags": if_match_tags(if_match), "layer": layer.id,
        "fid_text": fid_text(fid), "loaded_at": layer.updated_at, "op": op, "actor": who.actor,
        "request": who.request_id, "action": f"feature.{op}", "fid_json": json.dumps(fid), "geometry": sets.geometry,
        **{f"s{i}": value for i, value in enumerate(sets.values)}, **standing.values(layer.group_id),
    }  # fmt: skip
    row = await (await conn.execute(text, values)).fetchone()
    assert row is not None
    confirmed, found, allowed, required, etag, version, change_id, xact, feature = row
    if not confirmed:
        raise NotConfirmed
    if not found:
        raise NotFound("no such feature in this collection", parameter="featureId")
    if not allowed:
        if if_match is None and required:
            raise PreconditionRequired("this layer requires If-Match: send the ETag of the version you edit")
        raise PreconditionFailed("the feature changed since you read it: read it again (its new ETag) and retry")
    return Written(fid, int(version), f'"{etag}"', int(change_id), xact), str(feature)
