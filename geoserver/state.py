"""What the app holds while it runs: settings, the database's pools, the current registry."""

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
from starlette.types import Scope

from geoserver.clients import HeavySlots, Network, client_address
from geoserver.database import Database, Workload, is_connection_failure
from geoserver.settings import Settings
from geoserver.ticker import Ticker
from layers.catalogue.models import CHANGE_CHANNEL
from layers.catalogue.registry import Registry
from layers.edits import feed
from layers.errors import DatabaseUnavailable
from layers.open311.catalogue import SERVICES_MANIFEST, ServiceCatalogue, load_catalogue
from layers.queries.cursor import CursorSigner
from layers.queries.download_files import DownloadStore
from layers.queries.nearby import NearbyService
from layers.queries.search import SearchService
from layers.sqlcompose import render
from tiles.cache import TileCache
from tiles.source import TileSources

log = logging.getLogger("geoserver.state")
RETRY_S = 1.0
LISTENER_NAME = "geoserver-listener"
PURGE_EVERY_S = 3600  # how the change listener's connection shows in pg_stat_activity


@dataclass
class AppState:
    """Shared, per-app (never per-module) runtime state."""

    settings: Settings
    database_url: str
    db: Database
    tile_cache: TileCache
    cursors: CursorSigner
    downloads: DownloadStore
    heavy: HeavySlots
    trusted_proxies: tuple[Network, ...] = ()
    nearby: NearbyService = field(default_factory=NearbyService)
    feed: Ticker = field(default_factory=Ticker)
    search: SearchService = field(default_factory=SearchService)
    tiles: TileSources = field(default_factory=TileSources)
    registry_loaded: asyncio.Event = field(default_factory=asyncio.Event)
    _registry: Registry = field(default_factory=Registry)
    open311_services: ServiceCatalogue | None = None

    @property
    def registry(self) -> Registry:
        """The catalogue; until it could be read once, every request that needs it answers 503."""
        if not self.registry_loaded.is_set():
            self.db.check()
            raise DatabaseUnavailable("the catalogue is not loaded yet; retry shortly", retry_after_s=2)
        return self._registry

    def client_address(self, scope: Scope) -> str:
        """The client's address as every per-address limit counts it (`X-Forwarded-For` only from trusted proxies)."""
        return client_address(scope, self.trusted_proxies)

    def services(self) -> ServiceCatalogue:
        """The 311 service catalogue, read on first use (never at import or construction time)."""
        if self.open311_services is None:
            self.open311_services = load_catalogue(self.settings.open311_services or SERVICES_MANIFEST)
        return self.open311_services

    async def reload_registry(self) -> None:
        """Read the catalogue again; the old registry keeps serving until the new one is complete."""
        async with self.db.connection() as conn:
            try:
                registry = await Registry.load(conn)
            except psycopg.errors.UndefinedTable:
                log.error("the catalogue tables do not exist: run `geoserver migrate`")
                registry = Registry()
        # Tile SQL is composed here, once per catalogue load, never per request.
        self.tiles = TileSources(registry.all_layers())
        self._registry = registry
        self.registry_loaded.set()
        log.info("catalogue loaded: %d layers", len(registry))

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
                    self.downloads.clear()
                    await self.reload_registry()
                    self.feed.tick()  # subscribers look again: changes may have come while nobody listened
                    async for notice in conn.notifies():
                        await self.on_change(notice.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive any database outage
                log.warning("catalogue watcher lost the database (%s); retrying", exc.__class__.__name__)
                if is_connection_failure(exc) or isinstance(exc, OSError):
                    self.db.failed(exc)
                await asyncio.sleep(RETRY_S)

    async def on_change(self, payload: str) -> None:
        """Act on one change notice: an edit drops the tiles its extent touches, anything else reloads."""
        change = _parse(payload)
        layer = change.get("layer")
        bbox = change.get("bbox")
        if change.get("kind") == "edit" and isinstance(layer, str) and _is_bbox(bbox):
            dropped = self.tile_cache.invalidate_extent(layer, tuple(bbox))  # type: ignore[arg-type]
            self.downloads.invalidate(layer)
            delta = change.get("count_delta")
            if isinstance(delta, int):
                self._registry.count_changed(layer, delta)
            log.debug("edit in %s: %d cached tiles dropped", layer, dropped)
            self.feed.tick()  # after the tiles went: a subscriber that hears of the change reads fresh tiles
            return
        if isinstance(layer, str):
            self.tile_cache.invalidate_layer(layer)
            self.downloads.invalidate(layer)
        else:
            self.tile_cache.clear()
            self.downloads.clear()
        await self.reload_registry()
        self.feed.tick()


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


@contextlib.asynccontextmanager
async def running(state: AppState) -> AsyncIterator[None]:
    """Open the pool and start the catalogue watcher; stop both on the way out."""
    await state.db.open()
    tasks = [
        asyncio.create_task(state.watch_catalogue(), name="catalogue-watcher"),
        asyncio.create_task(_purge_changes(state), name="change-feed-purge"),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await state.downloads.close()
        await state.db.close()


async def _purge_changes(state: AppState) -> None:
    """Forget changes older than the feed's retention, now and every hour (any instance may: it is idempotent)."""
    while True:
        try:
            async with state.db.connection(Workload.WRITES) as conn:
                await feed.purge(conn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the purge waits for the next hour, whatever happened
            log.info("change feed purge skipped (%s)", exc.__class__.__name__)
        await asyncio.sleep(PURGE_EVERY_S)


async def get_state(request: Request) -> AppState:
    """The app's state, for route dependencies (async: a plain function would cost a thread hop per request)."""
    state: AppState = request.app.state.geoserver
    return state


StateDep = Annotated[AppState, Depends(get_state)]
