"""The HTTP server's own answers in the API's JSON (an overlong URL or header block, or an unreadable request), and
what only the connection knows: that the client left, or stopped reading.

URLs longer than `MAX_URL_BYTES` get a 414 from `UrlLimit` before any route runs. Requests that never reach the app
are answered by the HTTP protocol itself, and `JsonErrorsProtocol` makes those answers the same JSON error bodies as
every other: a 414 or 431 for a request line and headers over `MAX_HEAD_BYTES` (the parser would otherwise keep reading
them into memory without limit), a 400 for what the parser cannot read (its own URL limit is about 64 KiB). It also
gives each request a `DisconnectWatch` (`geoserver.disconnects`) and reports to it a lost connection, or a client that
read nothing for the send timeout, which it drops.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from geoserver.disconnects import WATCH, DisconnectWatch
from geoserver.disconnects import log as disconnects_log
from geoserver.errors import error_response

MAX_URL_BYTES = 56 * 1024  # room for the longest CQL2 filter (16 KiB), percent-encoded
MAX_HEAD_BYTES = 64 * 1024
LINGER_S = 2.0


class UrlLimit:
    """414 with a JSON body for a path and query longer than MAX_URL_BYTES."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and len(scope.get("raw_path", b"")) + len(scope.get("query_string", b"")) > (
            MAX_URL_BYTES
        ):
            response = error_response(
                414, "uri_too_long", f"the URL is longer than {MAX_URL_BYTES // 1024} KiB; shorten the query"
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class _HeadTooLarge(Exception):
    """Raised from a parser callback: httptools stops parsing and uvicorn calls `send_400_response`."""


class JsonErrorsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a bound on the request head, JSON bodies on its own errors, and each
    request's `DisconnectWatch` told when its client leaves or stops reading."""

    _head_bytes = 0  # of the request line and headers, as parsed
    _raw_bytes = 0  # received while the head is not complete (bounds memory while a huge header arrives)
    _in_head = True
    _refused = False
    _stall: asyncio.TimerHandle | None = None  # while the client reads nothing of what was written: the drop

    def _unsupported_upgrade_warning(self) -> None:
        # Refused by design (`ws="none"` below): any client may ask, so it is no warning, and uvicorn's advice to
        # install a WebSocket library does not apply.
        self.logger.debug("an upgrade request, answered as plain HTTP")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes, self._raw_bytes, self._in_head = 0, 0, True
        self.scope[WATCH] = DisconnectWatch()  # type: ignore[literal-required]

    def _watch(self, *, answering: bool = False) -> DisconnectWatch | None:
        """The watch of uvicorn's current request, if any (only while its answer is incomplete, if `answering`)."""
        cycle = self.cycle
        if cycle is None or (answering and cycle.response_complete):
            return None
        return cycle.scope.get(WATCH)  # type: ignore[return-value]

    def connection_lost(self, exc: Exception | None) -> None:
        self._unstall()
        watch = self._watch(answering=True)
        if watch is not None:
            watch.lost()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        # The transport holds more unsent bytes than its high-water mark: the client is not reading them.
        super().pause_writing()
        watch = self._watch()
        if self._stall is None and watch is not None and watch.send_timeout_s is not None:
            self._stall = self.loop.call_later(watch.send_timeout_s, self._drop_stalled, watch)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._unstall()

    def _unstall(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _drop_stalled(self, watch: DisconnectWatch) -> None:
        # Also after a complete answer that the client never read: the connection and its unsent bytes go.
        self._stall = None
        path = self.cycle.scope.get("path") if self.cycle is not None else None
        disconnects_log.info("client stopped reading %s: dropped after %g s", path, watch.send_timeout_s)
        if self._watch(answering=True) is watch:
            watch.lost(stalled=True)
        self.transport.abort()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._count(len(name) + len(value) + 4)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _HeadTooLarge

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # the rest of a refused request: read and dropped until the connection closes
        super().data_received(data)
        if self._in_head and not self._refused:
            self._raw_bytes += len(data)
            if self._raw_bytes > 2 * MAX_HEAD_BYTES:  # a header still arriving, or a request line without end
                self._refuse_head()

    def send_400_response(self, msg: str) -> None:
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse_head()
            return
        self._send_error(400, "bad_request", f"the request could not be read ({msg.rstrip('.')})")

    def _refuse_head(self) -> None:
        if len(self.url) > MAX_URL_BYTES:
            self._send_error(414, "uri_too_long", f"the URL is longer than {MAX_URL_BYTES // 1024} KiB")
        else:
            self._send_error(431, "headers_too_large", f"the request's headers exceed {MAX_HEAD_BYTES // 1024} KiB")

    def _send_error(self, status: int, code: str, description: str) -> None:
        body = orjson.dumps({"code": code, "description": description})
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        # Close our side only, read and drop what the client still sends for a moment, then close: closing with
        # unread data would reset the connection, and the client might never see the answer.
        self._refused = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)


def server_options() -> dict[str, Any]:
    """uvicorn's options shared by every way this app is served (`geoserver serve`, its workers, the tests)."""
    return {
        "lifespan": "on",
        "http": JsonErrorsProtocol,  # the parser's own errors in the API's JSON
        # No route speaks WebSocket: a request asking to upgrade is answered as the plain HTTP request it also is,
        # never handed to the app as a WebSocket connection (uvicorn's default accepts the upgrade).
        "ws": "none",
    }
