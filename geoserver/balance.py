"""Long-lived connections kept evenly spread over a server's workers.

Each worker listens on a socket of its own and the kernel gives it new connections by a hash of their addresses
(`geoserver.workers`): 16 connections opened at once fall 8/8 about one time in five, 10/6 or worse about one time
in two, 11/5 or worse one time in five. Connections that stay open (a proxy's pool to its upstream, an app's
keep-alive, a benchmark's clients) stay where the hash put them, and one worker may serve three times the other's
share while the other idles: every request on the busy one waits longer.

So the workers keep a board: a small shared file that each maps into memory, one slot per worker holding its process
id and how many connections it has open. A worker holding more than its share (the total over the live workers,
rounded up) answers the next request it reads with `Connection: close`; the client opens a new connection, which the
kernel hashes again, and within a few such answers every worker holds its share. A connection is closed only after a
whole answer, as HTTP/1.1 allows at any time; the client pays one TCP handshake to reconnect.

Only this worker writes its slot, one aligned 8-byte integer at a time; the others read it without a lock (a count a
moment old does no harm). Slots are claimed under a file lock: a worker that starts takes a free slot, or the slot of
a worker that died, which the supervisor is replacing. Before closing a connection, the slots of workers that died
without freeing them are left out of the share.
"""

from __future__ import annotations

import asyncio
import atexit
import fcntl
import mmap
import os
import tempfile
from pathlib import Path

from geoserver.httpserver import JsonErrorsProtocol

SLOTS = 64  # workers at most (Settings.workers)
_INTS_PER_SLOT = 2  # process id, open connections


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a process of another user took the number: not ours, but not dead either
    return True


def create_board() -> Path:
    """A new, empty board for one server's workers (in memory where the system has /dev/shm); the caller removes it."""
    shm = Path("/dev/shm")
    fd, name = tempfile.mkstemp(prefix="geoserver-workers-", suffix=".board", dir=shm if shm.is_dir() else None)
    try:
        os.ftruncate(fd, SLOTS * _INTS_PER_SLOT * 8)
    finally:
        os.close(fd)
    return Path(name)


class Board:
    """One worker's view of the board: its own slot to count in, and everyone's counts to compare with."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, SLOTS * _INTS_PER_SLOT * 8)
            with open(fd, closefd=False) as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    self._ints = memoryview(self._map).cast("q")
                    self._count = self._claim() * _INTS_PER_SLOT + 1
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _claim(self) -> int:
        ints, pid = self._ints, os.getpid()
        for slot in range(SLOTS):
            owner = ints[slot * _INTS_PER_SLOT]
            if owner == 0 or not _alive(owner):
                ints[slot * _INTS_PER_SLOT], ints[slot * _INTS_PER_SLOT + 1] = pid, 0
                return slot
        raise RuntimeError(f"more than {SLOTS} workers share one board")

    @property
    def slot(self) -> int:
        """This worker's place on the board (0 for the first worker to start)."""
        return self._count // _INTS_PER_SLOT

    def release(self) -> None:
        """Free this worker's slot (on a clean exit)."""
        self._ints[self._count] = 0
        self._ints[self._count - 1] = 0

    def opened(self) -> None:
        """A connection to this worker opened."""
        self._ints[self._count] += 1

    def closed(self) -> None:
        """A connection to this worker closed, or is about to."""
        self._ints[self._count] -= 1

    def over_share(self) -> bool:
        """Whether this worker holds more connections than its share of all the live workers' connections."""
        mine = self._ints[self._count]
        if mine <= 1:
            return False
        if not self._above(mine, live_only=False):
            return False
        return self._above(mine, live_only=True)  # a dead worker's slot holds a count that no longer exists

    def _above(self, mine: int, *, live_only: bool) -> bool:
        ints, total, workers = self._ints, 0, 0
        for index in range(0, SLOTS * _INTS_PER_SLOT, _INTS_PER_SLOT):
            owner = ints[index]
            if owner and (not live_only or _alive(owner)):
                workers += 1
                total += ints[index + 1]
        return workers > 1 and mine > -(-total // workers)


_board: Board | None = None  # this worker's, once it has joined (one per process)


def join(path: Path) -> None:
    """Make this worker process count its connections on the board at `path` (called once, as the worker starts)."""
    global _board  # noqa: PLW0603 - uvicorn builds the protocol with its own arguments: the board is the process's
    _board = Board(path)
    atexit.register(_board.release)


class BalancedProtocol(JsonErrorsProtocol):
    """The server's HTTP protocol, counting its connections on the board and closing one after an answer when this
    worker holds more than its share."""

    _counted = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if _board is not None:
            _board.opened()
            self._counted = True

    def connection_lost(self, exc: Exception | None) -> None:
        self._uncount()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if self._counted and cycle is not None and cycle.keep_alive and _board is not None and _board.over_share():
            cycle.keep_alive = False  # uvicorn answers with `Connection: close` and closes after the answer
            self._uncount()  # counted as gone now, so that the next request here sees the share it will have

    def _uncount(self) -> None:
        if self._counted and _board is not None:
            _board.closed()
            self._counted = False
