"""The HTTP server's own answers in the API's JSON: an overlong URL or header block, or an unreadable request.

URLs longer than `MAX_URL_BYTES` get a 414 from `UrlLimit` before any route runs. Requests that never reach the app
are answered by the HTTP protocol itself, and `JsonErrorsProtocol` makes those answers the same JSON error bodies as
every other: a 414 or 431 for a request line and headers over `MAX_HEAD_BYTES` (the parser would otherwise keep reading
them into memory without limit), a 400 for what the parser cannot read (its own URL limit is about 64 KiB). What the
connection knows of its client leaving or not reading, it reports as `geoserver.disconnects` says.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from geoserver.disconnects import DisconnectReportingProtocol
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


class JsonErrorsProtocol(DisconnectReportingProtocol):
    """uvicorn's httptools protocol, reporting disconnects (`geoserver.disconnects`), with a bound on the request head
    and JSON bodies on its own errors."""

    _head_bytes = 0  # of the request line and headers, as parsed
    _raw_bytes = 0  # received while the head is not complete (bounds memory while a huge header arrives)
    _in_head = True
    _refused = False

    def _unsupported_upgrade_warning(self) -> None:
        # Refused by design (`ws="none"` below): any client may ask, so it is no warning, and uvicorn's advice to
        # install a WebSocket library does not apply.
        self.logger.debug("an upgrade request, answered as plain HTTP")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes, self._raw_bytes, self._in_head = 0, 0, True

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
