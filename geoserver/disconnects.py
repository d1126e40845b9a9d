"""Nothing outlives its client: work for a client that left is cancelled, and a client that stops reading is dropped.

The connection sees both first. `DisconnectReportingProtocol` (uvicorn's httptools protocol, which the server's own
`geoserver.httpserver.JsonErrorsProtocol` extends) puts a `DisconnectWatch` in every request's scope, cancels the
task the running request's watch is armed with when the connection is lost before its answer is complete, and
aborts a connection whose client has read nothing for the send timeout (its unsent bytes stayed above the
transport's low-water mark). `CancelOnDisconnect` arms the watch with the request's own task and gives it the send
timeout. Nothing else runs per request: no watcher task, queue or timer (docs/performance.md has what those cost).

Cancelling the request's task cancels the statement it waits for: psycopg sends PostgreSQL a cancel request when
an awaited query is interrupted, so the backend stops within moments and the connection goes back to its pool.
Work that should survive its first client (building a download others may want) runs in a task of its own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from geoserver.asgi import HttpMiddleware

log = logging.getLogger("geoserver.disconnects")
WATCH = "geoserver.disconnect_watch"  # the scope key under which the protocol hands each request its watch
_BODYLESS = {"GET", "HEAD", "OPTIONS", "DELETE"}


class DisconnectWatch:
    """One request's line from its connection to its task: the protocol reports, the middleware arms."""

    __slots__ = ("_task", "gone", "cancelled", "stalled", "send_timeout_s")

    def __init__(self) -> None:
        self._task: asyncio.Task[Any] | None = None
        self.gone = False  # the connection was lost before the answer was complete
        self.cancelled = False  # ... and this watch cancelled the task it was armed with
        self.stalled = False  # ... because the client had read nothing of the answer for the send timeout
        self.send_timeout_s: float | None = None  # None: the protocol waits on a slow reader as long as it takes

    def arm(self, task: asyncio.Task[Any]) -> None:
        """From now on the client's leaving cancels `task` (at once if it has already left)."""
        self._task = task
        if self.gone:
            self._cancel()

    def disarm(self) -> None:
        """The request's work is over: nothing to cancel any more."""
        self._task = None

    def lost(self, *, stalled: bool = False) -> None:
        """The connection is gone: cancel the armed task, once."""
        if self.gone:
            return
        self.gone, self.stalled = True, stalled
        self._cancel()

    def _cancel(self) -> None:
        if self._task is not None and not self.cancelled:
            self.cancelled = True
            self._task.cancel()


class DisconnectReportingProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, telling the running request's `DisconnectWatch` when its client leaves or stops
    reading. The running request, not the newest: a pipelined request waits, parsed, behind the one answering."""

    _running: RequestResponseCycle | None = None  # the request whose task runs (uvicorn's `cycle` is the newest)
    _stall: asyncio.TimerHandle | None = None  # while the client reads nothing of what was written: the drop
    _stalled = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[WATCH] = DisconnectWatch()  # type: ignore[literal-required]

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        self._running = cycle
        super()._start_asgi_task(cycle, app)

    def connection_lost(self, exc: Exception | None) -> None:
        self._unstall()
        running = self._running
        if running is not None and not running.response_complete:
            watch = _watch_of(running)
            if watch is not None:
                watch.lost(stalled=self._stalled)
            # uvicorn marks only its newest request disconnected; the one answering may be older (pipelined). Marked
            # here, in the same callback, before its cancelled task runs: its end is no error of the app's.
            running.disconnected = True
            running.message_event.set()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        # The transport holds more unsent bytes than its high-water mark: the client is not reading them.
        super().pause_writing()
        watch = _watch_of(self._running)  # a complete answer may stall too (the keep-alive timeout waits on it)
        timeout = watch.send_timeout_s if watch is not None else None
        if self._stall is None and timeout is not None:
            self._stall = self.loop.call_later(timeout, self._drop_stalled, timeout)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._unstall()

    def _unstall(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _drop_stalled(self, timeout: float) -> None:
        # Also after a complete answer that the client never read: the connection and its unsent bytes go.
        self._stall, self._stalled = None, True
        path = self._running.scope.get("path") if self._running is not None else None
        log.info("client stopped reading %s: dropped after %g s", path, timeout)
        self.transport.abort()  # connection_lost follows: it cancels the running request's work


def _watch_of(cycle: RequestResponseCycle | None) -> DisconnectWatch | None:
    return cycle.scope.get(WATCH) if cycle is not None else None  # type: ignore[return-value]


class CancelOnDisconnect(HttpMiddleware):
    """Arm each HTTP request's watch with the task the request runs in, and say when work was stopped for a client
    that left.

    While a request body is still arriving, its messages belong to the handler (an upload streams through it, and is
    told of a disconnect by its own `receive`): the watch is armed at once for methods without a body, and after the
    last body chunk for the others.
    """

    def __init__(self, app: ASGIApp, *, send_timeout_s: float) -> None:
        super().__init__(app)
        self.send_timeout_s = send_timeout_s

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        watch: DisconnectWatch | None = scope.get(WATCH)
        if watch is None:  # served without this project's protocol: nothing reports the client's leaving
            await self.app(scope, receive, send)
            return
        current = asyncio.current_task()
        assert current is not None
        watch.send_timeout_s = self.send_timeout_s
        if scope.get("method") in _BODYLESS:
            watch.arm(current)
        else:
            receive = _arming_after_body(receive, watch, current)
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            if not watch.cancelled or current.uncancel() > 0:
                raise  # not the watch's cancel (the server is stopping), or more than one
            if not watch.stalled:  # a client dropped for not reading was logged when it was dropped
                log.info("client left %s %s: its work was cancelled", scope.get("method"), scope.get("path"))
        finally:
            watch.disarm()


def _arming_after_body(receive: Receive, watch: DisconnectWatch, task: asyncio.Task[Any]) -> Receive:
    """`receive`, arming the watch once the last chunk of the request body has been read."""

    async def arming_receive() -> Message:
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            watch.arm(task)
        return message

    return arming_receive
