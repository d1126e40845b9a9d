"""Live changes of a layer: Server-Sent Events (resumable with Last-Event-ID), or a JSON page with `?since=`.

Each event is `{id, layer, fid, op, version, bbox, at}` and its SSE id is the change id. A subscriber is sent a
change only if it may see the layer when the change is sent; no property value ever travels here. The stream holds
no database connection while it waits: a change notice (or a heartbeat every HEARTBEAT_S) wakes it to read what is
new. On this server, tiles a change touched are dropped before the change is sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from geoserver import params
from geoserver.auth import PrincipalDep
from geoserver.negotiation import weighted
from geoserver.responses import PRIVATE, json_response
from geoserver.state import AppState, StateDep
from layers.catalogue.visibility import Principal
from layers.edits import feed
from layers.errors import InvalidParameter, LayerNotFound

router = APIRouter(tags=["live changes"])
EVENT_STREAM = "text/event-stream"
HEARTBEAT_S = 15.0
BATCH = 500


def _wants_stream(request: Request, values: dict[str, str]) -> bool:
    if "since" in values:
        return False
    return any(media == EVENT_STREAM and q > 0 for media, q in weighted(request.headers.get("accept")))


def _change_id(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    number = params.integer(value, name)
    if number < 0:
        raise InvalidParameter(f"{name} is a change id (0 or more)", parameter=name)
    return number


@router.get("/collections/{collection_id}/changes", summary="Live changes (SSE), or changes since an id (JSON)")
async def changes(collection_id: str, request: Request, state: StateDep, principal: PrincipalDep) -> Response:
    """`Accept: text/event-stream` for a live stream (Last-Event-ID resumes); `?since=<id>` for a JSON page."""
    layer = state.registry.resolve(collection_id, principal)
    values = params.single_values(request.query_params.multi_items())
    params.check_known(values, ("since", "limit"))
    if _wants_stream(request, values):
        start = _change_id(request.headers.get("last-event-id"), "Last-Event-ID")
        return StreamingResponse(
            _events(state, principal, layer.id, start),
            media_type=EVENT_STREAM,
            headers={"Cache-Control": "no-store", "Vary": "Authorization", "X-Accel-Buffering": "no"},
        )
    since = _change_id(values.get("since"), "since") or 0
    limit = params.integer(values.get("limit", str(feed.MAX_CHANGES)), "limit")
    if not 1 <= limit <= feed.MAX_CHANGES:
        raise InvalidParameter(f"limit is 1 to {feed.MAX_CHANGES}", parameter="limit")
    async with state.db.connection() as conn:
        found = await feed.since(conn, [layer.id], since, limit)
        oldest = await feed.oldest(conn)
    last = found[-1].id if found else since
    body: dict[str, Any] = {"changes": [c.document() for c in found], "last": last,
                            "retention_days": feed.RETENTION.days}  # fmt: skip
    if oldest is not None and since + 1 < oldest:
        body["gap"] = True  # some changes after `since` are past the retention: reload the layer
    return json_response(body, public=False, headers={"Cache-Control": PRIVATE})


async def _events(state: AppState, principal: Principal, layer_id: str, start: int | None) -> AsyncIterator[bytes]:
    """The stream: changes after `start` (or from now), then each new one as it comes, with heartbeats."""
    if start is None:
        async with state.db.connection() as conn:
            start = await feed.latest(conn)
    last = start
    yield b"retry: 3000\n\n"
    while True:
        async with state.db.connection() as conn:
            found = await feed.since(conn, [layer_id], last, BATCH)
        for change in found:
            last = change.id
            if _may_see(state, principal, layer_id):
                yield b"id: %d\nevent: change\ndata: %s\n\n" % (change.id, orjson.dumps(change.document()))
        if len(found) == BATCH:
            continue
        if not await state.feed.wait(HEARTBEAT_S):
            yield b": keep-alive\n\n"


def _may_see(state: AppState, principal: Principal, layer_id: str) -> bool:
    """Whether the subscriber may see the layer now (who sees a layer can change while it listens)."""
    try:
        state.registry.resolve(layer_id, principal)
    except LayerNotFound:
        return False
    return True
