"""What the app holds while it runs: settings, the database's pools, the current registry."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

import psycopg
from fastapi import Depends, Request
from psycopg import sql
from starlette.types import Scope

from geoserver.clients import HeavySlots, Network, client_address
from geoserver.database import Database, Workload, warn_if_over_budget
from geoserver.replicas import current_lsn
from geoserver.settings import Settings
from geoserver.sharedcache import CATALOGUE_KEY, Purger, edit_keys, layer_key
from geoserver.ticker import Ticker
from geoserver.tokenmemory import TokenMemory, token_memory
from layers.catalogue.models import CHANGE_CHANNEL
from layers.catalogue.registry import Registry
from layers.edits import feed
from layers.errors import DatabaseUnavailable, GeoServerError, is_connection_failure
from layers.open311.catalogue import SERVICES_MANIFEST, ServiceCatalogue, load_catalogue
from layers.queries.cursor import CursorSigner
from layers.queries.download_files import DownloadStore
from layers.queries.nearby import NearbyService
from layers.queries.search import SearchService
from layers.sqlcompose import Slot, StatementCache, render
from tiles.cache import TileCache
from tiles.grids import MAX_ZOOM
from tiles.source import TileSources

log = logging.getLogger("geoserver.state")
SETTLE_CHANNEL = "geoserver_settle"  # NOTIFY channel: a writer's marker, heard after every change committed before it
_SETTLE = render(sql.SQL("SELECT pg_notify({}, {})").format(Slot("channel"), Slot("token")))
SETTLE_TIMEOUT_S = 2.0
ACTED_KEPT = 4096  # edit notices remembered until their writer asks (it asks within milliseconds)
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
    purger: Purger = field(default_factory=lambda: Purger(()))
    nearby: NearbyService = field(default_factory=NearbyService)
    feed: Ticker = field(default_factory=Ticker)
    search: SearchService = field(default_factory=SearchService)
    statements: StatementCache = field(default_factory=StatementCache)  # composed per shape, e.g. an edit's fields
    tiles: TileSources = field(default_factory=TileSources)
    token_memory: TokenMemory = field(default_factory=token_memory)  # for feature edits, which confirm it themselves
    registry_loaded: asyncio.Event = field(default_factory=asyncio.Event)
    _registry: Registry = field(default_factory=Registry)
    open311_services: ServiceCatalogue | None = None
    _settling: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    _awaiting: dict[str, asyncio.Future[None]] = field(default_factory=dict)  # writers' own notices, by transaction
    _acted: OrderedDict[str, None] = field(default_factory=OrderedDict)  # recent edit notices nobody waited for yet
    _budget_checked: bool = False  # the connection budget is checked once, on the listener's first connection
    _reads_started: int = 0  # catalogue reads started so far, numbered from 1
    _read_in_use: int = 0  # the number of the read whose registry is in use

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
        """Read the catalogue again; the old registry keeps serving until the new one is complete.

        Reads may overlap (a route's after its own change, the listener's after the notice): a read never replaces the
        registry of one that started after it, so a route never answers from a catalogue older than its own change."""
        self._reads_started += 1
        number = self._reads_started
        async with self.db.connection() as conn:
            try:
                registry = await Registry.load(conn)
            except psycopg.errors.UndefinedTable:
                log.error("the catalogue tables do not exist: run `geoserver migrate`")
                registry = Registry()
        if number < self._read_in_use:
            return  # a read that started later is in use already
        self._read_in_use = number
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
                    # A connection that died without a word (no FIN) is found within about a minute: until then
                    # notices would be lost while caches and near-me indexes were trusted.
                    keepalives=1,
                    keepalives_idle=30,
                    keepalives_interval=10,
                    keepalives_count=3,
                ) as conn:
                    for channel in (CHANGE_CHANNEL, SETTLE_CHANNEL):
                        await conn.execute(render(sql.SQL("LISTEN {}").format(sql.Identifier(channel))))
                    if not self._budget_checked:
                        self._budget_checked = True
                        await warn_if_over_budget(conn, self.settings)
                    # Listen first, then load and flush: nothing committed in between is missed, and whatever
                    # changed while we were not listening is no longer in any cache.
                    await self.on_change("{}")
                    self.nearby.memory.listening(True)
                    self.feed.tick()  # subscribers look again: changes may have come while nobody listened
                    async for notice in conn.notifies():
                        if notice.channel == SETTLE_CHANNEL:
                            self._settled(notice.payload)
                        else:
                            await self.on_change(notice.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive any database outage
                self.nearby.memory.listening(False)
                log.warning("catalogue watcher lost the database (%s); retrying", exc.__class__.__name__)
                if is_connection_failure(exc) or isinstance(exc, OSError):
                    self.db.failed(exc)
                await asyncio.sleep(RETRY_S)

    async def on_change(self, payload: str) -> None:
        """Act on one change notice: an edit drops the tiles its extent touches, anything else reloads.

        In order: reads of the layer need a replica that has replayed the change; the local caches drop what the
        change made stale; shared caches are told (a notice without a layer means changes may have been missed).
        """
        change = _parse(payload)
        layer = change.get("layer")
        bbox = change.get("bbox")
        self.nearby.memory.changed(layer if isinstance(layer, str) else None)  # stale at once, before any await
        await self._require_replay(layer if isinstance(layer, str) else None)
        if change.get("kind") == "edit" and isinstance(layer, str) and _is_bbox(bbox):
            dropped = self.tile_cache.invalidate_extent(layer, tuple(bbox))  # type: ignore[arg-type]
            self.downloads.invalidate(layer)
            delta = change.get("count_delta")
            if isinstance(delta, int):
                self._registry.count_changed(layer, delta)
            log.debug("edit in %s: %d cached tiles dropped", layer, dropped)
            if self.purger.enabled:
                await self.purger.purge(edit_keys(layer, bbox, self._zooms(layer)))  # type: ignore[arg-type]
            self.feed.tick()  # after the tiles went: a subscriber that hears of the change reads fresh tiles
            self._acted_on(change.get("xact"))
            return
        if isinstance(layer, str):
            self.tile_cache.invalidate_layer(layer)
            self.downloads.invalidate(layer)
        else:
            self.tile_cache.clear()
            self.downloads.clear()
        await self.reload_registry()
        if self.purger.enabled:
            layers = [layer] if isinstance(layer, str) else [one.id for one in self._registry.all_layers()]
            await self.purger.purge([CATALOGUE_KEY, *(layer_key(one) for one in layers)])
        self.feed.tick()
        if layer is None:  # everything was dropped: whatever a writer waits for is acted on, heard or not
            for waiter in self._awaiting.values():
                _wake(waiter)

    def _zooms(self, layer_id: str) -> range:
        """The zooms the layer has tiles at (all of them if it is not in the catalogue any more)."""
        layer = next((one for one in self._registry.all_layers() if one.id == layer_id), None)
        return range(layer.min_zoom, layer.max_zoom + 1) if layer is not None else range(MAX_ZOOM + 1)

    async def _require_replay(self, layer: str | None) -> None:
        """Reads of the layer (of every layer without one) need a database at the primary's WAL position now."""
        if self.db.replicas is None:
            return
        async with self.db.connection() as conn:
            lsn = await current_lsn(conn)
        if layer is None:
            self.db.replicas.require_all(lsn)
        else:
            self.db.replicas.require([layer], lsn)

    async def settle(self, xact: str | None = None) -> None:
        """Return once this instance has acted on every change committed before now (after a write: the writer's
        next read, here or through a purged shared cache, sees the write). Notices arrive in commit order, so a
        notice sent now is heard after every earlier one; and so is the write's own change notice, when the write
        says which transaction it named (`xact`): then that notice is awaited instead of sending one more."""
        if xact is not None:
            await self._own_notice(xact)
            return
        token = secrets.token_hex(8)
        waiter = asyncio.get_running_loop().create_future()
        self._settling[token] = waiter
        try:
            async with self.db.connection(Workload.WRITES) as conn:
                await conn.execute(_SETTLE, {"channel": SETTLE_CHANNEL, "token": token})
            await asyncio.wait_for(waiter, SETTLE_TIMEOUT_S)
        except (TimeoutError, GeoServerError):
            log.info("a write did not settle within %g s; answering anyway", SETTLE_TIMEOUT_S)
        finally:
            self._settling.pop(token, None)

    def _settled(self, token: str) -> None:
        waiter = self._settling.get(token)
        if waiter is not None:
            _wake(waiter)

    async def _own_notice(self, xact: str) -> None:
        if xact in self._acted:  # heard before the writer asked
            del self._acted[xact]
            return
        waiter = asyncio.get_running_loop().create_future()
        self._awaiting[xact] = waiter
        try:
            await asyncio.wait_for(waiter, SETTLE_TIMEOUT_S)
        except TimeoutError:
            log.info("a write's change notice was not heard within %g s; answering anyway", SETTLE_TIMEOUT_S)
        finally:
            self._awaiting.pop(xact, None)

    def _acted_on(self, xact: object) -> None:
        """This instance acted on the edit of transaction `xact`: wake its writer, or remember it for a while."""
        if not isinstance(xact, str):
            return
        waiter = self._awaiting.pop(xact, None)
        if waiter is not None:
            _wake(waiter)
            return
        self._acted[xact] = None  # every instance hears every edit: most have no writer here
        if len(self._acted) > ACTED_KEPT:
            self._acted.popitem(last=False)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


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
        asyncio.create_task(_read_point_indexes(state), name="near-me-indexes"),
    ]
    if state.db.replicas is not None:
        tasks.append(asyncio.create_task(state.db.replicas.monitor(state.database_url), name="replica-monitor"))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await state.purger.close()
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


async def _read_point_indexes(state: AppState) -> None:
    """Read the points of the small point layers near me asks about into memory, one layer at a time."""
    memory = state.nearby.memory
    while True:
        layer = await memory.next_wanted()
        try:
            async with state.db.connection(Workload.HEAVY) as conn:
                await memory.build(conn, layer)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the database answers near me meanwhile; asked again later
            memory.read_failed(layer.id)
            log.info("near-me index of %s not read (%s)", layer.id, exc.__class__.__name__)


async def get_state(request: Request) -> AppState:
    """The app's state, for route dependencies (async: a plain function would cost a thread hop per request)."""
    state: AppState = request.app.state.geoserver
    return state


StateDep = Annotated[AppState, Depends(get_state)]
