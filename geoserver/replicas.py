"""Read replicas: anonymous map reads go to streaming replicas that have replayed every change they depend on.

`GEOSERVER_READ_DATABASE_URLS` names one or more replicas. Each gets a pool for map and search reads. A monitor asks
the primary for its WAL position and each replica for its replay position a few times a second: a replica that is
unreachable, or that has not caught up with the primary for `GEOSERVER_REPLICA_MAX_LAG_S`, leaves the rotation, and
comes back by itself once it has.

When a change to a layer is heard, the primary's WAL position at that moment (at or past the change's commit) becomes
what reads of that layer need: until a replica has replayed that far, those reads go to the primary. So an edited
tile or item is never rebuilt from a replica that has not seen the edit. Writes, signed-in callers (so a writer
reads its own writes), LISTEN and heavy work always use the primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from layers.sqlcompose import render

log = logging.getLogger("geoserver.replicas")
MONITOR_EVERY_S = 0.1
CHECK_TIMEOUT_S = 1.0


def lsn_value(text: str | None) -> int:
    """A `pg_lsn` ('16/B374D848') as a number that orders like the WAL."""
    if not text:
        return 0
    high, _, low = str(text).partition("/")
    return (int(high, 16) << 32) + int(low, 16)


async def current_lsn(conn: psycopg.AsyncConnection[Any]) -> int:
    """The primary's WAL write position now."""
    row = await (await conn.execute(_WRITTEN)).fetchone()
    return lsn_value(row[0] if row else None)


@dataclass
class Replica:
    """One replica, its pool and what the monitor last saw of it."""

    name: str
    url: str
    pool: AsyncConnectionPool
    replayed: int = 0
    in_rotation: bool = False


@dataclass
class Replicas:
    """The replicas, what each layer's reads need, and the monitor keeping both current."""

    members: list[Replica]
    max_lag_s: float
    needed: dict[str, int] = field(default_factory=dict)
    floor: int = 0  # what every read needs (set when changes may have been missed)
    _next: int = 0
    # The primary's WAL positions as the monitor saw them, with when: a replica's lag is how long ago the primary
    # first had WAL the replica has not replayed yet.
    _history: deque[tuple[float, int]] = field(default_factory=deque)

    def require(self, layer_ids: Iterable[str], lsn: int) -> None:
        """Reads of these layers need a database that has replayed up to `lsn`."""
        for layer_id in layer_ids:
            self.needed[layer_id] = max(self.needed.get(layer_id, 0), lsn)

    def require_all(self, lsn: int) -> None:
        self.floor = max(self.floor, lsn)

    def pick(self, layer_ids: Iterable[str]) -> Replica | None:
        """A replica in rotation that has replayed what reads of these layers need (round robin), or None."""
        need = max((self.needed.get(layer_id, 0) for layer_id in layer_ids), default=0)
        need = max(need, self.floor)
        ready = [r for r in self.members if r.in_rotation and r.replayed >= need]
        if not ready:
            return None
        self._next = (self._next + 1) % len(ready)
        return ready[self._next]

    def left(self, replica: Replica, reason: str) -> None:
        if replica.in_rotation:
            log.warning("replica %s out of rotation: %s", replica.name, reason)
        replica.in_rotation = False

    async def open(self) -> None:
        for replica in self.members:
            await replica.pool.open(wait=False)

    async def close(self) -> None:
        for replica in self.members:
            await replica.pool.close()

    async def monitor(self, primary_url: str) -> None:
        """Forever: the primary's position, each replica's replay position, the rotation."""
        connections: dict[str, psycopg.AsyncConnection[Any]] = {}
        try:
            while True:
                primary = await _position(connections, "primary", primary_url, _WRITTEN)
                self._remember(primary)
                for replica in self.members:
                    replayed = await _position(connections, replica.name, replica.url, _REPLAYED)
                    self._judge(replica, replayed)
                await asyncio.sleep(MONITOR_EVERY_S)
        finally:
            for conn in connections.values():
                with contextlib.suppress(Exception):
                    await conn.close()

    def _remember(self, primary: int | None) -> None:
        now = time.monotonic()
        if primary is not None and (not self._history or primary > self._history[-1][1]):
            self._history.append((now, primary))
        while len(self._history) > 1 and now - self._history[1][0] > 2 * self.max_lag_s:
            self._history.popleft()

    def lag_s(self, replayed: int) -> float:
        """How long ago the primary first had WAL beyond `replayed` (0 when the replica has all the monitor saw)."""
        first_ahead = next((at for at, lsn in self._history if lsn > replayed), None)
        return 0.0 if first_ahead is None else time.monotonic() - first_ahead

    def _judge(self, replica: Replica, replayed: int | None) -> None:
        if replayed is None:
            self.left(replica, "unreachable")
            return
        replica.replayed = replayed
        if self.lag_s(replayed) > self.max_lag_s:
            self.left(replica, f"more than {self.max_lag_s:g} s behind the primary")
        elif not replica.in_rotation:
            log.info("replica %s in rotation", replica.name)
            replica.in_rotation = True


_WRITTEN = render(sql.SQL("SELECT pg_current_wal_lsn()::text"))
_REPLAYED = render(sql.SQL("SELECT pg_last_wal_replay_lsn()::text"))


async def _position(
    connections: dict[str, psycopg.AsyncConnection[Any]], name: str, url: str, query: bytes
) -> int | None:
    """A WAL position from a monitoring connection of its own (reconnected as needed); None when unreachable."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            conn = connections.get(name)
            if conn is None or conn.closed or conn.broken:
                conn = await psycopg.AsyncConnection.connect(
                    url, autocommit=True, connect_timeout=1, application_name="geoserver-monitor"
                )
                connections[name] = conn
            row = await (await conn.execute(query)).fetchone()
            return lsn_value(row[0] if row else None)
    except (OSError, TimeoutError, psycopg.Error):
        stale = connections.pop(name, None)
        if stale is not None:
            with contextlib.suppress(Exception):
                await stale.close()
        return None
