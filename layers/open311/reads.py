"""Reading requests back as GeoReport publishes them: every request of the 311 layer (demo ones included) with what
the service code allows of its details, the point at the code's precision (exact for City staff), the status
notes, and `updated_datetime` following every change (a status change, an edit of the layer, the closing).
Requester fields are never selected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection, sql

from layers.catalogue.models import HISTORY_TABLE, OPEN311_REQUESTS_TABLE, STATUS_TABLE
from layers.errors import NotFound
from layers.open311.catalogue import ServiceCatalogue
from layers.open311.places import RequestsLayer, block_codes, published
from layers.sqlcompose import Binder, Slot, render

MAX_REQUESTS = 1000  # GeoReport's default volume: the first 1,000 of the span
MAX_IDS = 100


@dataclass(frozen=True)
class RequestQuery:
    """Which requests to list: by ids (which override everything else), or by codes, statuses and a time span."""

    ids: tuple[str, ...] | None = None
    codes: tuple[str, ...] | None = None
    statuses: tuple[str, ...] | None = None  # open, closed
    start: datetime | None = None
    end: datetime | None = None
    exact: bool = False  # City staff: the stored point, not the published one


_SELECT = """
SELECT t.{id}, t.{status}, n.status_notes, t.{code}, o.description, o.media_url, o.address, t.{requested},
       greatest(t.{requested}, t.{closed}, n.updated_at,
                (SELECT max(h.at) FROM {history} AS h WHERE h.layer_id = {layer} AND h.fid = to_jsonb(t.{id})::text)),
       ST_X(p.pt), ST_Y(p.pt)
FROM {table} AS t
LEFT JOIN {mine} AS o ON o.request_id = t.{id}
LEFT JOIN {notes} AS n ON n.request_id = t.{id}
CROSS JOIN LATERAL (SELECT CASE WHEN {exact} THEN coalesce(o.geom, t.{g}) ELSE {point} END AS pt) AS p
WHERE t.{code} = ANY({codes}) AND {where}
ORDER BY t.{requested} DESC, t.{id}
LIMIT {limit}
"""


async def find_requests(
    conn: AsyncConnection[Any], catalogue: ServiceCatalogue, where: RequestsLayer, query: RequestQuery, lang: str
) -> list[dict[str, Any]]:
    """The requests matching `query`, newest first, as GeoReport's request records."""
    bind = Binder()
    block = sql.SQL("t.{} = ANY({})").format(where.column("code"), bind(block_codes(catalogue)))
    statement = sql.SQL(_SELECT).format(
        id=where.id, status=where.column("status"), code=where.column("code"), requested=where.column("requested"),
        closed=where.column("closed"), history=HISTORY_TABLE, layer=bind(where.layer.id), table=where.layer.table,
        mine=OPEN311_REQUESTS_TABLE, notes=STATUS_TABLE, exact=bind(query.exact), g=where.geom,
        point=published(sql.SQL("t.{}").format(where.geom), block), codes=bind(list(query.codes or catalogue.codes)),
        where=_conditions(where, query, bind), limit=bind(MAX_REQUESTS),
    )  # fmt: skip
    rows = await (await conn.execute(render(statement), bind.params)).fetchall()
    return [_record(catalogue, row, lang) for row in rows]


def _conditions(where: RequestsLayer, query: RequestQuery, bind: Binder) -> sql.Composable:
    if query.ids is not None:
        return sql.SQL("t.{} = ANY({})").format(where.id, bind(list(query.ids)))
    parts: list[sql.Composable] = []
    status = sql.SQL("t.{}").format(where.column("status"))
    if query.statuses is not None and set(query.statuses) != {"open", "closed"}:
        closed = "closed" in query.statuses
        parts.append(sql.SQL("{} {} 'closed'").format(status, sql.SQL("=" if closed else "IS DISTINCT FROM")))
    requested = sql.SQL("t.{}").format(where.column("requested"))
    if query.start is not None:
        parts.append(sql.SQL("{} >= {}").format(requested, bind(query.start)))
    if query.end is not None:
        parts.append(sql.SQL("{} <= {}").format(requested, bind(query.end)))
    return sql.SQL(" AND ").join(parts) if parts else sql.SQL("true")


def w3(moment: datetime | None) -> str | None:
    """A time as GeoReport writes it: `2010-01-01T00:00:00Z`."""
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _record(catalogue: ServiceCatalogue, row: tuple[Any, ...], lang: str) -> dict[str, Any]:
    rid, status, notes, code, description, media, address, requested, updated, lon, lat = row
    service = catalogue.service(code)
    exact = service.location == "exact"
    return {
        "service_request_id": rid,
        "status": "closed" if status == "closed" else "open",
        "status_notes": notes,
        "service_name": service.name.get(lang),
        "service_code": code,
        "description": description if service.publish_description else None,
        "agency_responsible": service.department,
        "service_notice": service.service_notice.get(lang) if service.service_notice else None,
        "requested_datetime": w3(requested),
        "updated_datetime": w3(updated),
        "expected_datetime": None,
        # An address would undo a generalised location: published only where the location is exact.
        "address": address if exact else None,
        "address_id": None,
        "zipcode": None,
        "lat": round(lat, 6) if lat is not None else None,
        "long": round(lon, 6) if lon is not None else None,
        "media_url": media if service.publish_media else None,
    }


_TOKEN = render(sql.SQL("SELECT request_id FROM {} WHERE token = {}").format(OPEN311_REQUESTS_TABLE, Slot("token")))


async def request_for_token(conn: AsyncConnection[Any], token: str) -> str:
    """The request id a `batch` submission's token stands for; NotFound (404) for an unknown token."""
    row = await (await conn.execute(_TOKEN, {"token": token})).fetchone()
    if row is None:
        raise NotFound("token was not found", parameter="token")
    return str(row[0])
