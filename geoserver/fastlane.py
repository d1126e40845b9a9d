"""The most frequent requests (vector tiles, near me, and a feature's PATCH and PUT) dispatched without FastAPI's route
matching and dependency injection: the same endpoint functions, called with the same state and caller (resolved by
the route's own dependency for who calls: the token looked up, or for a feature's PATCH and PUT the caller their write
confirms, `geoserver.auth.editing_caller`), answering the same errors.

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
from geoserver.auth import current_principal, editing_caller
from geoserver.state import AppState

Handler = Callable[[Request, Exception], Awaitable[Response]]
CallerParam = tuple[str, Callable[[Request, AppState], Awaitable[Any]]]
CALLERS = (current_principal, editing_caller)  # the dependencies that say who calls


def _caller(route: APIRoute) -> CallerParam:
    """The endpoint's parameter for who calls, and the dependency FastAPI would resolve it with."""
    for dependency in route.dependant.dependencies:
        if dependency.call in CALLERS and dependency.name is not None:
            return dependency.name, cast(Callable[[Request, AppState], Awaitable[Any]], dependency.call)
    raise ValueError(f"{route.path}: a fast-lane route says who calls through one of {CALLERS}")


class FastLane(HttpMiddleware):
    """Requests that one of `routes` matches, method and path, go straight to its endpoint; the rest go on."""

    def __init__(self, app: ASGIApp, *, fastapi: FastAPI, routes: Sequence[APIRoute]) -> None:
        super().__init__(app)
        self.fastapi = fastapi
        self.routes = tuple((route, frozenset(route.methods or ()), _caller(route)) for route in routes)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        path, root = scope["path"], scope.get("root_path", "")
        path = path.removeprefix(root) if root and path.startswith(root) else path  # as the app's routing does
        for route, methods, caller in self.routes:
            if method in methods:
                match = route.path_regex.match(path)
                if match is not None:
                    await self._serve(route, caller, match.groupdict(), scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(
        self,
        route: APIRoute,
        caller: CallerParam,
        path_params: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        scope["route"], scope["endpoint"], scope["path_params"] = route, route.endpoint, path_params
        request = Request(scope, receive)
        state: AppState = self.fastapi.state.geoserver
        name, resolve = caller
        try:
            who = await resolve(request, state)
            response = await route.endpoint(**path_params, request=request, state=state, **{name: who})
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
