"""Storing a checked submission: one transaction that collapses duplicates, applies the rate limits, numbers the
request and writes its public row (the point at its published precision) to the requests layer, its details and
exact point beside it, its requester apart, version 1 in the layer's history, a change in the feed and an audit
entry. The layer's change trigger announces the row, so every server drops the tiles it touches at commit.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb

from layers.catalogue.journal import audit
from layers.catalogue.models import CHANGES_TABLE, HISTORY_TABLE, OPEN311_REQUESTS_TABLE, REQUESTERS_TABLE
from layers.errors import InvalidParameter, QuotaExceeded
from layers.open311.places import RequestsLayer, published
from layers.open311.submission import Submission
from layers.sqlcompose import Slot, render

DUPLICATE_WINDOW_S = 600  # the same report sent again within ten minutes is the same request
ID_PREFIX = "SR-"
ID_DIGITS = 8
_LOCK = render(sql.SQL("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))").format(Slot("key")))


@dataclass(frozen=True)
class Submitter:
    """Who submits: the key's holder (an app, a group), its prefix, and a digest of the client's address."""

    subject: str
    key: str
    group_id: str | None
    client_digest: bytes


@dataclass(frozen=True)
class Limits:
    """Submissions allowed per key and per client address in any hour."""

    per_key_per_hour: int
    per_address_per_hour: int


@dataclass(frozen=True)
class Created:
    """The stored request (or the first one, for a duplicate) and the token of a `batch` service."""

    request_id: str
    token: str | None
    duplicate: bool


async def create(
    conn: AsyncConnection[Any], where: RequestsLayer, submission: Submission, who: Submitter, limits: Limits
) -> Created:
    """Store a submission, or answer the first of its duplicates; nothing is written when a check fails."""
    fingerprint = submission.fingerprint(who.key)
    async with conn.transaction():
        # One submission of a key at a time: duplicates and the key's rate limit cannot race past each other.
        await conn.execute(_LOCK, {"key": f"geoserver.open311:{who.key}"})
        first = await _duplicate_of(conn, fingerprint)
        if first is not None:
            return first
        await _check_rate(conn, who, limits)
        await _check_inside(conn, where, submission)
        # The same lock as edits' creates on this layer: ids are numbered one writer at a time.
        await conn.execute(_LOCK, {"key": f"geoserver.layer:{where.layer.id}"})
        request_id = await _next_id(conn, where)
        token = secrets.token_urlsafe(16) if submission.service.type == "batch" else None
        await _insert(conn, where, submission, who, request_id, token, fingerprint)
    return Created(request_id, token, duplicate=False)


_DUPLICATE = render(
    sql.SQL(
        "SELECT request_id, token FROM {} WHERE fingerprint = {} AND created_at > now() - make_interval(secs => {}) "
        "ORDER BY created_at LIMIT 1"
    ).format(OPEN311_REQUESTS_TABLE, Slot("fingerprint"), Slot("window"))
)


async def _duplicate_of(conn: AsyncConnection[Any], fingerprint: bytes) -> Created | None:
    row = await (await conn.execute(_DUPLICATE, {"fingerprint": fingerprint, "window": DUPLICATE_WINDOW_S})).fetchone()
    return None if row is None else Created(row[0], row[1], duplicate=True)


_RATE = render(
    sql.SQL(
        "SELECT count(*) FILTER (WHERE api_key = {key}), count(*) FILTER (WHERE client_digest = {client}), "
        "ceil(extract(epoch FROM min(created_at) + interval '1 hour' - now())) FROM {t} "
        "WHERE created_at > now() - interval '1 hour' AND (api_key = {key} OR client_digest = {client})"
    ).format(t=OPEN311_REQUESTS_TABLE, key=Slot("key"), client=Slot("client"))
)


async def _check_rate(conn: AsyncConnection[Any], who: Submitter, limits: Limits) -> None:
    row = await (await conn.execute(_RATE, {"key": who.key, "client": who.client_digest})).fetchone()
    assert row is not None
    by_key, by_address, wait_s = row
    over_key = by_key >= limits.per_key_per_hour
    if over_key or by_address >= limits.per_address_per_hour:
        raise QuotaExceeded(
            f"too many service requests from {'this api_key' if over_key else 'this address'} in the last hour; "
            "try again later",
            retry_after_s=max(1, int(wait_s or 60)),
            parameter="api_key",
            limit="open311_per_key" if over_key else "open311_per_address",
        )


async def _check_inside(conn: AsyncConnection[Any], where: RequestsLayer, submission: Submission) -> None:
    """The point must fall in one of the City's wards (their union is the City's boundary)."""
    statement = sql.SQL(
        "SELECT EXISTS (SELECT 1 FROM {} WHERE ST_Intersects({}, ST_SetSRID(ST_MakePoint({}, {}), 4326)))"
    ).format(where.wards.table, sql.Identifier(where.wards.geometry_column), Slot("lon"), Slot("lat"))
    row = await (await conn.execute(render(statement), {"lon": submission.lon, "lat": submission.lat})).fetchone()
    if not (row and row[0]):
        raise InvalidParameter("lat and long are outside the City's boundary", parameter="lat")


async def _next_id(conn: AsyncConnection[Any], where: RequestsLayer) -> str:
    """The number after the largest ever used in the layer: in the layer now, among requests submitted here (a
    reloaded layer may have lost some) and in the layer's history (a deleted feature keeps its id), as `SR-` and
    eight digits. An id is never given twice."""
    pattern = f"^{ID_PREFIX}[0-9]{{{ID_DIGITS}}}$"
    # Read backwards along each index: the first id of the pattern met is the largest.
    statement = sql.SQL(
        "SELECT greatest((SELECT {id} FROM {table} WHERE {id} ~ {pattern} ORDER BY {id} DESC LIMIT 1), "
        "(SELECT request_id FROM {mine} WHERE request_id ~ {pattern} ORDER BY request_id DESC LIMIT 1), "
        "(SELECT fid::jsonb #>> '{{}}' FROM {history} WHERE layer_id = {layer} AND fid ~ {quoted} "
        "ORDER BY fid DESC LIMIT 1))"
    ).format(
        id=where.id, table=where.layer.table, mine=OPEN311_REQUESTS_TABLE, pattern=Slot("pattern"),
        history=HISTORY_TABLE, layer=Slot("layer"), quoted=Slot("quoted"),
    )  # fmt: skip
    values = {"pattern": pattern, "layer": where.layer.id, "quoted": f'^"{pattern[1:-1]}"$'}
    row = await (await conn.execute(render(statement), values)).fetchone()
    largest = int(row[0][len(ID_PREFIX) :]) if row and row[0] else 0
    return f"{ID_PREFIX}{largest + 1:0{ID_DIGITS}d}"


_INSERT = """
WITH p AS (SELECT ST_SetSRID(ST_MakePoint({lon}, {lat}), 4326) AS exact),
new AS (INSERT INTO {table} AS t ({id}, {code}, {status}, {requested}, {g})
        SELECT {rid}, {code_value}, 'open', now(), {point} FROM p RETURNING t.*),
o AS (INSERT INTO {mine} (request_id, layer_id, service_code, geom, address, description, media_url, attributes,
                          token, fingerprint, api_key, client_digest)
      SELECT {rid}, {layer}, {code_value}, p.exact, {address}, {description}, {media}, {attributes}, {token},
             {fingerprint}, {key}, {client} FROM p RETURNING request_id),
r AS (INSERT INTO {requesters} (request_id, email, first_name, last_name, phone, device_id, account_id)
      SELECT {rid}, {email}, {first_name}, {last_name}, {phone}, {device_id}, {account_id} FROM o),
h AS (INSERT INTO {history} (layer_id, fid, version, op, attributes, geom, actor, request_id)
      SELECT {layer}, to_jsonb(new.{id})::text, 1, 'create', {row}, new.{g}, {actor}, NULL FROM new)
INSERT INTO {changes} (layer_id, fid, op, version, bbox)
SELECT {layer}, to_jsonb(new.{id})::text, 'create', 1,
       json_build_array(ST_XMin(new.{g}), ST_YMin(new.{g}), ST_XMax(new.{g}), ST_YMax(new.{g})) FROM new
"""


async def _insert(
    conn: AsyncConnection[Any],
    where: RequestsLayer,
    submission: Submission,
    who: Submitter,
    request_id: str,
    token: str | None,
    fingerprint: bytes,
) -> None:
    g = where.geom
    drop = [where.layer.geometry_column, *([where.layer.geometry_3857_column] if where.layer.geometry_3857_column
                                           else [])]  # fmt: skip
    statement = sql.SQL(_INSERT).format(
        lon=Slot("lon"), lat=Slot("lat"), table=where.layer.table, id=where.id, code=where.column("code"),
        status=where.column("status"), requested=where.column("requested"), g=g, rid=Slot("rid"),
        code_value=Slot("code"), point=published(sql.SQL("p.exact"), Slot("block")), mine=OPEN311_REQUESTS_TABLE,
        layer=Slot("layer"), address=Slot("address"), description=Slot("description"), media=Slot("media"),
        attributes=Slot("attributes"), token=Slot("token"), fingerprint=Slot("fingerprint"), key=Slot("key"),
        client=Slot("client"), requesters=REQUESTERS_TABLE, history=HISTORY_TABLE, changes=CHANGES_TABLE,
        row=sql.SQL(" - ").join([sql.SQL("to_jsonb(new)"), *map(sql.Literal, drop)]), actor=Slot("actor"),
        **{name: Slot(name) for name in submission.requester},
    )  # fmt: skip
    values = {
        "lon": submission.lon, "lat": submission.lat, "rid": request_id, "code": submission.service.code,
        "block": submission.service.location == "block", "layer": where.layer.id, "address": submission.address,
        "description": submission.description, "media": submission.media_url,
        "attributes": Jsonb(submission.attributes), "token": token, "fingerprint": fingerprint, "key": who.key,
        "client": who.client_digest, "actor": who.subject, **submission.requester,
    }  # fmt: skip
    await conn.execute(render(statement), values)
    detail = {"fid": request_id, "service_code": submission.service.code, "key": who.key}
    await conn.execute(*audit(who.subject, "open311.create", where.layer.id, detail, group_id=who.group_id))
