"""Even shares of the open connections among the workers: a worker holding more than its share lets one go.

Each worker listens on a socket of its own and the kernel hands it new connections by a hash of their addresses
(geoserver/workers.py), so a handful of long-lived connections (a proxy's pool, an app's keep-alive, a benchmark)
often split unevenly: with 16 connections on 2 workers, 8/8 about two times in five, 10/6 or worse otherwise. The
busier worker then answers each of its connections less often while the other has room. Measured with
`scripts/bench/edits` (2026-11-27): before, splits of 8/8, 11/5 and 10/6 gave a p99 of 48.6, 72.6 and 88.9 ms; after,
8/8 in three runs of three, p99 53.5, 77.3 and 52.1 ms: an uneven split is one cause of slow answers, not the only one.

The workers count their open connections in a small table they share (one slot per worker process: its pid, its
count). At the start of each request, a worker holding more than its share of all open connections (rounded up)
answers that request with `Connection: close`, as HTTP allows at any time; the client opens a new connection,
which the kernel hands to a worker by the new connection's hash. One connection is let go per excess, at most one
every `LET_GO_EVERY_S`, so the counts settle within a second, and a worker whose share is held by connections that
send no more requests (live change streams) costs the others at most that many reconnections. A single worker (no
table) never closes a connection for this.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from typing import Any

_PID, _COUNT = 0, 1
LET_GO_EVERY_S = 0.05


class ConnectionShares:
    """The shared table, made by the supervisor and handed to every worker it starts (restarts included)."""

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._lock = context.Lock()
        # Room for a worker that is being replaced beside its replacement: a dead pid's slot is taken again.
        self._table: Any = context.RawArray("q", 2 * 2 * workers)
        self._slot = -1  # this process's slot, once it has joined
        self._open = 0  # this worker's open connections
        self._closing = 0  # connections told to close that are still open
        self._next_let_go = 0.0  # time.monotonic() before which none is let go

    def __getstate__(self) -> dict[str, Any]:
        return {"_lock": self._lock, "_table": self._table}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._lock, self._table = state["_lock"], state["_table"]
        self._slot, self._open, self._closing, self._next_let_go = -1, 0, 0, 0.0

    def join(self) -> bool:
        """Take a free slot (or a dead worker's) for this process; False when none is left (no balancing then)."""
        pid = os.getpid()
        with self._lock:
            for slot in range(len(self._table) // 2):
                held = self._table[2 * slot + _PID]
                if held == 0 or held == pid or not _alive(held):
                    self._table[2 * slot + _PID], self._table[2 * slot + _COUNT] = pid, 0
                    self._slot = slot
                    return True
        return False

    def opened(self) -> None:
        """A connection of this worker opened."""
        self._open += 1
        self._publish()

    def closed(self, told_to: bool) -> None:
        """A connection of this worker closed; `told_to`: it was one this worker let go."""
        self._open -= 1
        if told_to:
            self._closing -= 1
        self._publish()

    def should_let_go(self) -> bool:
        """True when this worker holds more than its share (not counting connections already let go): the caller
        then closes the current connection after its answer."""
        keeping = self._open - self._closing
        if self._slot < 0 or keeping <= 1:
            return False
        now = time.monotonic()
        if now < self._next_let_go:
            return False
        table = self._table
        workers = total = 0
        for slot in range(len(table) // 2):
            if table[2 * slot + _PID]:
                workers += 1
                total += table[2 * slot + _COUNT]
        if workers < 2 or keeping <= math.ceil(total / workers):
            return False
        self._closing += 1
        self._next_let_go = now + LET_GO_EVERY_S
        return True

    def _publish(self) -> None:
        if self._slot >= 0:
            self._table[2 * self._slot + _COUNT] = self._open


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_WORKER_SHARES: list[ConnectionShares] = []  # this worker process's table, once joined (none for a single worker)


def join(shares: ConnectionShares) -> None:
    """Called in a worker process as it starts: count its connections in the shared table."""
    if shares.join():
        _WORKER_SHARES[:] = [shares]


def worker_shares() -> ConnectionShares | None:
    """This worker's table, or None (a single worker, or no slot left)."""
    return _WORKER_SHARES[0] if _WORKER_SHARES else None
