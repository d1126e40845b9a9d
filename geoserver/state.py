"""What the app holds while it runs: settings, the connection pool, the current registry."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

import psycopg
from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool

from geoserver.settings import Settings
from layers.catalog import Registry
from layers.ingest import CHANGE_CHANNEL

log = logging.getLogger("geoserver.state")
RETRY_S = 1.0


@dataclass
class AppState:
    """Shared, per-app (never per-module) runtime state."""

    settings: Settings
    database_url: str
    pool: AsyncConnectionPool
    registry: Registry = field(default_factory=Registry)
    registry_loaded: asyncio.Event = field(default_factory=asyncio.Event)

    async def reload_registry(self) -> None:
        """Read the catalogue again; the old registry keeps serving until the new one is complete."""
        async with self.pool.connection() as conn:
            try:
                self.registry = await Registry.aload(conn)
            except psycopg.errors.UndefinedTable:
                log.error("the catalogue tables do not exist: run `geoserver migrate`")
                self.registry = Registry()
        self.registry_loaded.set()
        log.info("catalogue loaded: %d layers", len(self.registry))

    async def watch_catalogue(self) -> None:
        """Keep the registry current: load it, then reload on every change notice; reconnect when dropped."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.database_url, autocommit=True, connect_timeout=int(self.settings.connect_timeout_s) or 1
                ) as conn:
                    await conn.execute(f"LISTEN {CHANGE_CHANNEL}")
                    # Listen first, then load: a change committed in between is not missed.
                    await self.reload_registry()
                    async for notice in conn.notifies():
                        log.info("layer changed: %s", _layer_of(notice.payload))
                        await self.reload_registry()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive any database outage
                log.warning("catalogue watcher lost the database (%s); retrying", exc.__class__.__name__)
                await asyncio.sleep(RETRY_S)


def _layer_of(payload: str) -> str:
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        return str(json.loads(payload).get("layer"))
    return "?"


def make_pool(settings: Settings, database_url: str) -> AsyncConnectionPool:
    """A closed pool: the lifespan opens it, so nothing connects at import or construction time."""
    return AsyncConnectionPool(
        database_url,
        open=False,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.connect_timeout_s,
        reconnect_timeout=30,
        check=AsyncConnectionPool.check_connection,
        kwargs={
            "autocommit": True,
            "application_name": "geoserver",
            "connect_timeout": max(1, int(settings.connect_timeout_s)),
            "options": f"-c statement_timeout={settings.statement_timeout_ms}",
        },
    )


@contextlib.asynccontextmanager
async def running(state: AppState) -> AsyncIterator[None]:
    """Open the pool and start the catalogue watcher; stop both on the way out."""
    await state.pool.open(wait=False)
    watcher = asyncio.create_task(state.watch_catalogue(), name="catalogue-watcher")
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await state.pool.close()


def get_state(request: Request) -> AppState:
    """The app's state, for route dependencies."""
    state: AppState = request.app.state.geoserver
    return state


StateDep = Annotated[AppState, Depends(get_state)]
