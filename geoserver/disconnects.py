"""Nothing outlives its client: work for a client that left is cancelled, and a client that stops reading is dropped.

Cancelling the request's task cancels the statement it waits for: psycopg sends PostgreSQL a cancel request when
an awaited query is interrupted, so the backend stops within moments and the connection goes back to its pool.
Work that should survive its first client (building a download others may want) runs in a task of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geoserver.asgi import HttpMiddleware

log = logging.getLogger("geoserver.disconnects")
_BODYLESS = {"GET", "HEAD", "OPTIONS", "DELETE"}


class ClientTooSlow(Exception):
    """The client read nothing of the answer for the whole send timeout."""


class CancelOnDisconnect(HttpMiddleware):
    """Run each HTTP request in a task that is cancelled when its client disconnects or stops reading.

    The client's disconnect can only be seen once its request body has been read: until then every message belongs
    to the handler (an upload streams through it). So the watch starts at once for methods without a body, and
    after the last body chunk for the others.
    """

    def __init__(self, app: ASGIApp, *, send_timeout_s: float) -> None:
        super().__init__(app)
        self.send_timeout_s = send_timeout_s

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The request runs in the task that called us; one watcher task cancels it when the client goes (a task
        # for the handler and one more to wait on cost a quarter of a near-me answer's time in this middleware).
        current = asyncio.current_task()
        assert current is not None
        gone = asyncio.Event()
        relayed: asyncio.Queue[Message] = asyncio.Queue()
        body_read = asyncio.Event()
        if scope.get("method") in _BODYLESS:
            body_read.set()

        def left() -> None:
            if not gone.is_set():
                gone.set()
                current.cancel()

        async def watch() -> None:
            await body_read.wait()
            while True:
                message = await receive()
                await relayed.put(message)
                if message["type"] == "http.disconnect":
                    left()
                    return

        async def handler_receive() -> Message:
            if not body_read.is_set():
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    body_read.set()
                if message["type"] == "http.disconnect":
                    gone.set()  # the handler has the news itself: no need to cancel the task it runs in
                return message
            return await relayed.get()

        async def timed_send(message: Message) -> None:
            try:
                async with asyncio.timeout(self.send_timeout_s):  # no task of its own, unlike wait_for on 3.11
                    await send(message)
            except TimeoutError:
                raise ClientTooSlow from None

        watcher = asyncio.create_task(watch())
        try:
            await self.app(scope, handler_receive, timed_send)
        except asyncio.CancelledError:
            if not gone.is_set() or current.uncancel() > 0:
                raise  # the server itself is cancelling this request
            log.info("client left %s %s: its work was cancelled", scope.get("method"), scope.get("path"))
        except ClientTooSlow:
            log.info("client stopped reading %s: dropped after %g s", scope.get("path"), self.send_timeout_s)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
