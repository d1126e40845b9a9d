"""The database as requests see it: a pool per kind of work, and a breaker that answers 503 at once during an outage.

Interactive reads (tiles, pages of items, near me, what's here, the catalogue) have a pool of their own, so downloads,
heavy filters and writes can never take the connections they need. Each pool waits a bounded time for a free
connection, then answers 503 with `Retry-After`, naming the pool that was full.

When a connection fails (the database stopped, restarted or cannot be reached), the breaker opens: every request
that needs the database answers 503 at once, without waiting for a pool, and a background probe tries to connect
a few times a second. When the probe gets through, the pools drop their broken connections and the breaker closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from geoserver.replicas import Replica, Replicas
from geoserver.settings import Settings
from layers.errors import Busy, DatabaseUnavailable, TooExpensive, is_connection_failure
from layers.priority import lower_backend_priority
from layers.sqlcompose import Slot, render

log = logging.getLogger("geoserver.database")
PROBE_EVERY_S = 0.2
PROBE_TIMEOUT_S = 1.0
OUTAGE_RETRY_AFTER_S = 1


class Workload(StrEnum):
    """The kinds of work that never compete for the same connections."""

    INTERACTIVE = "interactive"  # tiles, pages of items, near me, what's here, catalogue and token lookups
    HEAVY = "heavy"  # CQL2 filters, very large pages, 311 measures
    WRITES = "writes"  # edits, uploads, groups, tokens, 311 submissions and status changes


WHAT = {
    Workload.INTERACTIVE: "map and search requests",
    Workload.HEAVY: "heavy requests (filters, large pages, 311 measures)",
    Workload.WRITES: "writes",
}


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # a container's CPU limit (cgroup v2): "<quota> <period>" or "max ..."
MAX_DEFAULT_POOL = 16  # one worker's event loop keeps no more tile builds going than this, whatever the cores


def available_cores() -> int:
    """The CPU cores this process may use: its cpuset or `taskset` share, within a container's CPU limit if any."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 limit to read
    return cores


def interactive_pool_size(settings: Settings) -> int:
    """Connections per worker for map and search requests: the setting, or twice the cores shared among the workers
    (at least 2, at most MAX_DEFAULT_POOL).

    A tile build keeps its backend on a core: with more builds at work than the cores can run, PostgreSQL switches
    between them and builds fewer tiles, with a longer tail (README, "measured 2026-11-28, with the default map
    pool"). The default suits a database on the same machine; for one elsewhere, set it from the database's cores
    (docs/scaling.md)."""
    if settings.pool_max_size is not None:
        return settings.pool_max_size
    return min(MAX_DEFAULT_POOL, max(2, math.ceil(2 * available_cores() / settings.workers)))


def pool_sizes(settings: Settings) -> dict[Workload, int]:
    """How many connections each workload may hold."""
    return {
        Workload.INTERACTIVE: interactive_pool_size(settings),
        Workload.HEAVY: settings.heavy_pool_size,
        Workload.WRITES: settings.writes_pool_size,
    }


def connections_per_worker(settings: Settings) -> int:
    """The most connections one worker opens to the primary: its pools and its change listener."""
    return sum(pool_sizes(settings).values()) + 1


_ALLOWED = render(
    sql.SQL("SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int")
)
_STATEMENT_TIMEOUT = render(sql.SQL("SELECT set_config('statement_timeout', {}, true)").format(Slot("ms")))


async def warn_if_over_budget(conn: AsyncConnection[Any], settings: Settings) -> bool:
    """Log a warning (and return True) when this instance's workers alone may open more connections than the
    primary allows: requests would then fail with 503s under load, far from the cause (docs/scaling.md)."""
    row = await (await conn.execute(_ALLOWED)).fetchone()
    allowed = int(row[0]) if row else 0
    wanted = connections_per_worker(settings) * settings.workers
    if wanted <= allowed:
        return False
    log.warning(
        "%d worker(s) may open %d connections to PostgreSQL, which allows %d: raise max_connections or lower "
        "GEOSERVER_POOL_MAX_SIZE, GEOSERVER_HEAVY_POOL_SIZE or GEOSERVER_WRITES_POOL_SIZE (docs/scaling.md)",
        settings.workers, wanted, allowed,
    )  # fmt: skip
    return True


def _waits(settings: Settings) -> dict[Workload, float]:
    """How long a request waits for a free connection of each pool before it answers 503."""
    return {
        Workload.INTERACTIVE: settings.pool_timeout_s,
        Workload.HEAVY: settings.heavy_wait_s,
        Workload.WRITES: settings.heavy_wait_s,
    }


async def _low_priority(conn: AsyncConnection[Any]) -> None:
    await lower_backend_priority(conn)


def _pool(settings: Settings, url: str, workload: Workload, size: int) -> AsyncConnectionPool:
    return AsyncConnectionPool(
        url,
        open=False,
        name=workload.value,
        min_size=min(settings.pool_min_size, size),
        max_size=size,
        timeout=_waits(settings)[workload],
        reconnect_timeout=30,
        configure=_low_priority if workload is Workload.HEAVY else None,
        # No check on every checkout (a round trip per request): a connection found broken opens the breaker, and
        # the pools are checked before it closes again.
        kwargs={
            "autocommit": True,
            "application_name": f"geoserver-{workload.value}",
            "connect_timeout": max(1, int(settings.connect_timeout_s)),
            # UTC and ISO dates: timestamps in JSON answers and in features' entity tags (a row's text) never
            # depend on where the database runs.
            "options": f"-c statement_timeout={settings.statement_timeout_ms} -c timezone=UTC -c datestyle=ISO",
        },
    )


@dataclass
class Database:
    """The pools and the breaker. Built closed: `open()` (in the app's lifespan) connects."""

    settings: Settings
    url: str
    pools: dict[Workload, AsyncConnectionPool] = field(default_factory=dict)
    replicas: Replicas | None = None
    down_since: float | None = None
    _probe: asyncio.Task[None] | None = None

    @classmethod
    def build(cls, settings: Settings, url: str) -> Database:
        pools = {workload: _pool(settings, url, workload, size) for workload, size in pool_sizes(settings).items()}
        urls = [u.strip() for u in settings.read_database_urls.split(",") if u.strip()]
        members = [
            Replica(f"replica {n}", u, _pool(settings, u, Workload.INTERACTIVE, interactive_pool_size(settings)))
            for n, u in enumerate(urls, start=1)
        ]
        replicas = Replicas(members, settings.replica_max_lag_s) if members else None
        return cls(settings, url, pools, replicas)

    async def open(self) -> None:
        for pool in self.pools.values():
            await pool.open(wait=False)
        if self.replicas is not None:
            await self.replicas.open()

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        for pool in self.pools.values():
            await pool.close()
        if self.replicas is not None:
            await self.replicas.close()

    @contextlib.asynccontextmanager
    async def read(self, layer_ids: Sequence[str], *, anonymous: bool) -> AsyncIterator[AsyncConnection[Any]]:
        """A connection for map reads of these layers: a replica that has replayed every change they depend on, or
        the primary (always for signed-in callers, so a writer reads its own writes)."""
        replica = self.replicas.pick(layer_ids) if self.replicas is not None and anonymous else None
        if replica is None:
            async with self.connection() as conn:
                yield conn
            return
        assert self.replicas is not None
        try:
            conn = await replica.pool.getconn(timeout=self.settings.pool_timeout_s)
        except PoolTimeout:
            raise Busy(
                f"all {replica.pool.max_size} connections to {replica.name} are in use; retry shortly",
                limit="replica_connections",
                retry_after_s=2,
            ) from None
        try:
            yield conn
        except psycopg.errors.QueryCanceled:
            raise TooExpensive("the query ran longer than allowed and was stopped", retry_after_s=5) from None
        except psycopg.OperationalError as exc:
            if not is_connection_failure(exc):
                raise
            self.replicas.left(replica, "a connection failed")
            raise DatabaseUnavailable("a database replica failed; retry", retry_after_s=1) from None
        finally:
            await replica.pool.putconn(conn)

    @property
    def is_down(self) -> bool:
        return self.down_since is not None

    def check(self) -> None:
        """Raise at once while the breaker is open."""
        if self.down_since is not None:
            raise DatabaseUnavailable("the database is unavailable; retry shortly", retry_after_s=OUTAGE_RETRY_AFTER_S)

    @contextlib.asynccontextmanager
    async def connection(
        self, workload: Workload = Workload.INTERACTIVE, *, timeout_ms: int | None = None
    ) -> AsyncIterator[AsyncConnection[Any]]:
        """A connection of the workload's pool, turning what goes wrong into the right answer.

        `timeout_ms` runs the block in a transaction with that statement timeout (lower for anonymous heavy work).
        """
        self.check()
        pool = self.pools[workload]
        try:
            conn = await pool.getconn()
        except PoolTimeout:
            self.suspect()  # all busy, or the database unreachable: the probe tells which
            self.check()
            raise Busy(
                f"all {pool.max_size} connections for {WHAT[workload]} are in use; retry shortly",
                limit=f"{workload.value}_connections",
                retry_after_s=2,
            ) from None
        try:
            if timeout_ms is None:
                yield conn
            else:
                async with conn.transaction():
                    await conn.execute(_STATEMENT_TIMEOUT, {"ms": str(timeout_ms)})
                    yield conn
        except psycopg.errors.QueryCanceled:
            seconds = (timeout_ms or self.settings.statement_timeout_ms) / 1000
            raise TooExpensive(
                f"the query ran longer than the {seconds:g} s allowed and was stopped; narrow it (a bbox, fewer "
                "filter terms, a smaller limit) or sign in",
                retry_after_s=5,
            ) from None
        except psycopg.OperationalError as exc:
            if not is_connection_failure(exc):
                raise
            self.failed(exc)
            raise DatabaseUnavailable(
                "the database is unavailable; retry shortly", retry_after_s=OUTAGE_RETRY_AFTER_S
            ) from None
        finally:
            await pool.putconn(conn)

    def failed(self, exc: BaseException | None = None) -> None:
        """A connection failed: open the breaker and probe until the database answers again."""
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("database connection lost (%s): answering 503 until it is back", type(exc).__name__)
        self.suspect()

    def suspect(self) -> None:
        """Something may be wrong: make sure a probe is running (it opens the breaker if it cannot connect)."""
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._watch(), name="database-probe")

    async def _watch(self) -> None:
        while not await self._reachable():
            if self.down_since is None:
                self.down_since = time.monotonic()
                log.warning("the database does not answer: answering 503 until it is back")
            await asyncio.sleep(PROBE_EVERY_S)
        if self.down_since is not None:
            # Old connections died with the server: drop them before requests get them.
            await asyncio.gather(*(pool.check() for pool in self.pools.values()), return_exceptions=True)
            log.warning("database back after %.1f s", time.monotonic() - self.down_since)
            self.down_since = None

    async def _reachable(self) -> bool:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S * 2):
                conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=1, application_name="geoserver-probe"
                )
                async with conn:
                    await conn.execute("SELECT 1")
        except (OSError, TimeoutError, psycopg.Error):
            return False
        return True
