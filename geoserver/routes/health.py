"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from geoserver.errors import error_response
from geoserver.state import StateDep

router = APIRouter(tags=["operations"])
READY_TIMEOUT_S = 2.0


@router.get("/health", summary="The process is alive")
async def health() -> dict[str, str]:
    """Answers while the process lives, whatever the database is doing."""
    return {"status": "ok"}


@router.get("/ready", summary="The database is reachable and the catalogue loaded", response_model=None)
async def ready(state: StateDep) -> JSONResponse | dict[str, object]:
    """200 when a query goes through and the catalogue is loaded, 503 otherwise."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            async with state.db.connection() as conn:
                await conn.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure here means "not ready"
        return error_response(503, "database_unavailable", "the database is unreachable", retry_after_s=1)
    if not state.registry_loaded.is_set():
        return error_response(503, "starting", "the catalogue is still loading")
    answer: dict[str, object] = {"status": "ready", "layers": len(state.registry)}
    if state.db.replicas is not None:
        replicas = state.db.replicas
        answer["replicas"] = [
            {"name": r.name, "in_rotation": r.in_rotation, "lag_s": round(replicas.lag_s(r.replayed), 3)}
            for r in replicas.members
        ]
    return answer
