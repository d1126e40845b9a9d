"""The middleware that stops work for clients that left or stopped reading, driven directly through ASGI."""

from __future__ import annotations

import asyncio
import time

from starlette.types import Message, Receive, Scope, Send

from geoserver.disconnects import CancelOnDisconnect

SCOPE: Scope = {"type": "http", "method": "GET", "path": "/slow", "headers": []}


class Handler:
    """An app that answers slowly: it records whether it was cancelled."""

    def __init__(self, *, body_chunks: int = 0, work_s: float = 10.0) -> None:
        self.cancelled = False
        self.body_chunks = body_chunks
        self.work_s = work_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(self.body_chunks):
                await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
            await asyncio.sleep(self.work_s)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            self.cancelled = True
            raise


def test_work_for_a_client_that_disconnected_is_cancelled() -> None:
    handler = Handler()

    async def receive() -> Message:
        await asyncio.sleep(0.1)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        return None

    started = time.monotonic()
    asyncio.run(CancelOnDisconnect(handler, send_timeout_s=30)(SCOPE, receive, send))
    assert handler.cancelled and time.monotonic() - started < 2


def test_a_client_that_stops_reading_is_dropped_after_the_send_timeout() -> None:
    handler = Handler(body_chunks=100)
    sent: list[Message] = []

    async def receive() -> Message:
        await asyncio.sleep(3600)  # the client stays connected
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if len(sent) >= 3:
            await asyncio.sleep(3600)  # the client's window is full: it reads nothing more
        sent.append(message)

    started = time.monotonic()
    asyncio.run(CancelOnDisconnect(handler, send_timeout_s=0.5)(SCOPE, receive, send))
    assert handler.cancelled is False  # it was stopped in its send, not cancelled while working
    assert len(sent) == 3 and 0.5 <= time.monotonic() - started < 3


def test_a_request_body_reaches_the_handler_before_the_watch_starts() -> None:
    chunks = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    ]
    seen: list[bytes] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            seen.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def receive() -> Message:
        if chunks:
            return chunks.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        return None

    asyncio.run(CancelOnDisconnect(app, send_timeout_s=5)({**SCOPE, "method": "POST"}, receive, send))
    assert seen == [b"ab", b"cd"]
