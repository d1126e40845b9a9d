"""What the app holds while it runs: settings, the connection pool, the current registry."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

import psycopg
from fastapi import Depends, Request
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from geoserver.settings import Settings
from layers.catalogue.models import CHANGE_CHANNEL
from layers.catalogue.registry import Registry
from layers.queries.cursor import CursorSigner
from layers.queries.nearby import NearbyService
from layers.queries.search import SearchService
from layers.sqlcompose import render
from tiles.cache import TileCache
from tiles.source import TileSources

log = logging.getLogger("geoserver.state")
RETRY_S = 1.0
LISTENER_NAME = "geoserver-listener"  # how the change listener's connection shows in pg_stat_activity


@dataclass
class AppState:
    """Shared, per-app (never per-module) runtime state."""

    settings: Settings
    database_url: str
    pool: AsyncConnectionPool
    tile_cache: TileCache
    cursors: CursorSigner
    nearby: NearbyService = field(default_factory=NearbyService)
    search: SearchService = field(default_factory=SearchService)
    registry: Registry = field(default_factory=Registry)
    tiles: TileSources = field(default_factory=TileSources)
    registry_loaded: asyncio.Event = field(default_factory=asyncio.Event)

    async def reload_registry(self) -> None:
        """Read the catalogue again; the old registry keeps serving until the new one is complete."""
        async with self.pool.connection() as conn:
            try:
                registry = await Registry.load(conn)
            except psycopg.errors.UndefinedTable:
                log.error("the catalogue tables do not exist: run `geoserver migrate`")
                registry = Registry()
        # Tile SQL is composed here, once per catalogue load, never per request.
        self.tiles = TileSources(registry.all_layers())
        self.registry = registry
        self.registry_loaded.set()
        log.info("catalogue loaded: %d layers", len(self.registry))

    async def watch_catalogue(self) -> None:
        """Keep the registry and tile cache current: reload on layer reloads, drop tiles an edit touched."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.database_url,
                    autocommit=True,
                    connect_timeout=max(1, int(self.settings.connect_timeout_s)),
                    application_name=LISTENER_NAME,
                ) as conn:
                    await conn.execute(render(sql.SQL("LISTEN {}").format(sql.Identifier(CHANGE_CHANNEL))))
                    # Listen first, then load and flush: nothing committed in between is missed, and whatever
                    # changed while we were not listening is no longer in the cache.
                    self.tile_cache.clear()
                    await self.reload_registry()
                    async for notice in conn.notifies():
                        await self.on_change(notice.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive any database outage
                log.warning("catalogue watcher lost the database (%s); retrying", exc.__class__.__name__)
                await asyncio.sleep(RETRY_S)

    async def on_change(self, payload: str) -> None:
        """Act on one change notice: an edit drops the tiles its extent touches, anything else reloads."""
        change = _parse(payload)
        layer = change.get("layer")
        bbox = change.get("bbox")
        if change.get("kind") == "edit" and isinstance(layer, str) and _is_bbox(bbox):
            dropped = self.tile_cache.invalidate_extent(layer, tuple(bbox))  # type: ignore[arg-type]
            delta = change.get("count_delta")
            if isinstance(delta, int):
                self.registry.count_changed(layer, delta)
            log.debug("edit in %s: %d cached tiles dropped", layer, dropped)
            return
        if isinstance(layer, str):
            self.tile_cache.invalidate_layer(layer)
        else:
            self.tile_cache.clear()
        await self.reload_registry()


def _parse(payload: str) -> dict[str, object]:
    with contextlib.suppress(ValueError, TypeError):
        value = json.loads(payload)
        if isinstance(value, dict):
            return value
    return {}


def _is_bbox(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 4
        and all(isinstance(v, int | float) and math.isfinite(v) for v in value)
    )


def make_pool(settings: Settings, database_url: str) -> AsyncConnectionPool:
    """A closed pool: the lifespan opens it, so nothing connects at import or construction time."""
    return AsyncConnectionPool(
        database_url,
        open=False,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.pool_timeout_s,
        reconnect_timeout=30,
        # No check on every checkout (a round trip per request): a connection found broken is discarded on
        # return, the request answers 503, and the pool reconnects in the background.
        kwargs={
            "autocommit": True,
            "application_name": "geoserver",
            "connect_timeout": max(1, int(settings.connect_timeout_s)),
            # UTC: timestamps in JSON answers never depend on where the database runs.
            "options": f"-c statement_timeout={settings.statement_timeout_ms} -c timezone=UTC",
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


async def get_state(request: Request) -> AppState:
    """The app's state, for route dependencies (async: a plain function would cost a thread hop per request)."""
    state: AppState = request.app.state.geoserver
    return state


StateDep = Annotated[AppState, Depends(get_state)]
