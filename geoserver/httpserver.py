"""The HTTP server's own answers in the API's JSON: an overlong URL, or a request the parser refuses.

URLs longer than `MAX_URL_BYTES` get a 414 from `UrlLimit` before any route runs. Requests the HTTP parser itself
cannot read (headers beyond its limits, malformed request lines) never reach the app: uvicorn answers them, and
`JsonErrorsProtocol` makes that answer the same JSON error body as every other.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from geoserver.errors import error_response

MAX_URL_BYTES = 16 * 1024


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


class JsonErrorsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering requests it cannot parse with a JSON 400."""

    def send_400_response(self, msg: str) -> None:
        body = orjson.dumps({"code": "bad_request", "description": f"{msg} (request line or headers too large?)"})
        content = [STATUS_LINE[400]]
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
        self.transport.close()
