"""The most frequent requests (vector tiles, near me, and a feature's PATCH and PUT) dispatched without FastAPI's route
matching and dependency injection: the same endpoint functions, called with the same state and caller, answering the
same errors.

Measured on this project's 2-core machine, one worker: a bare ASGI app under uvicorn answers about 32,000 requests a
second, FastAPI with one route about 8,800, and this server's `/health` (behind 47 routes and the middlewares) about
3,300; route matching alone took a sixth of that. A tile or a near-me answer pays the same costs around work of its
own, so the lane sits innermost among the middlewares: rate limits, metrics, CORS, CSP, shared-cache headers and the
JSON error answers apply to it exactly as to every other request. Only a hot route's own methods are taken (HEAD,
OPTIONS and the rest go on to FastAPI), and only paths its own pattern matches, which no route matched before it could
match with that method. A feature edit reads its body itself (`geoserver.bodies`, with its size limit), so FastAPI's
body handling is not missed (a body limit set on a route through FastAPI would not apply here): at 16 connections,
dependency injection and route matching were about a fifth of a worker's time on a PATCH (py-spy on the edits
benchmark).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from geoserver.asgi import HttpMiddleware
from geoserver.auth import current_principal
from geoserver.state import AppState

Handler = Callable[[Request, Exception], Awaitable[Response]]


class FastLane(HttpMiddleware):
    """Requests that one of `routes` matches, method and path, go straight to its endpoint; the rest go on."""

    def __init__(self, app: ASGIApp, *, fastapi: FastAPI, routes: Sequence[APIRoute]) -> None:
        super().__init__(app)
        self.fastapi = fastapi
        self.routes = tuple((route, frozenset(route.methods or ())) for route in routes)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        path, root = scope["path"], scope.get("root_path", "")
        path = path.removeprefix(root) if root and path.startswith(root) else path  # as the app's routing does
        for route, methods in self.routes:
            if method in methods:
                match = route.path_regex.match(path)
                if match is not None:
                    await self._serve(route, match.groupdict(), scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(
        self, route: APIRoute, path_params: dict[str, str], scope: Scope, receive: Receive, send: Send
    ) -> None:
        scope["route"], scope["endpoint"], scope["path_params"] = route, route.endpoint, path_params
        request = Request(scope, receive)
        state: AppState = self.fastapi.state.geoserver
        try:
            principal = await current_principal(request, state)
            response = await route.endpoint(**path_params, request=request, state=state, principal=principal)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Handler | None:
        """The app's exception handler for this exception, as FastAPI would choose it (the nearest class first)."""
        handlers = cast(dict[Any, Handler], self.fastapi.exception_handlers)  # ours are all async
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None  # the unexpected: the catch-all middleware answers and logs them, as for other routes
            if cls in handlers:
                return handlers[cls]
        return None
