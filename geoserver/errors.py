"""The one place where errors become HTTP responses: a JSON body, never a stack trace or SQL text."""

from __future__ import annotations

import logging

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from geoserver.asgi import HttpMiddleware
from layers.errors import (
    Busy,
    ClusterError,
    Conflict,
    DatabaseUnavailable,
    Forbidden,
    GeoServerError,
    IngestError,
    InvalidParameter,
    ManifestError,
    NotAllowed,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    QuotaExceeded,
    Retryable,
    TooExpensive,
    TooLarge,
    Unauthorized,
    is_connection_failure,
)

log = logging.getLogger("geoserver.errors")

STATUS: list[tuple[type[GeoServerError], int]] = [
    (NotFound, 404),
    (InvalidParameter, 400),
    (IngestError, 422),
    (ManifestError, 422),
    (DatabaseUnavailable, 503),
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotAllowed, 405),
    (Conflict, 409),
    (PreconditionFailed, 412),
    (PreconditionRequired, 428),
    (TooLarge, 413),
    (QuotaExceeded, 429),
    (Busy, 503),
    (TooExpensive, 503),
    (ClusterError, 503),
]
RETRY_AFTER_S = "5"


def error_response(
    status: int,
    code: str,
    description: str,
    parameter: str | None = None,
    *,
    retry_after_s: int | None = None,
    limit: str | None = None,
) -> JSONResponse:
    """An OGC-style JSON exception body; `limit` names the limit a 429/503 reached."""
    body: dict[str, str] = {"code": code, "description": description}
    if parameter is not None:
        body["parameter"] = parameter
    if limit is not None:
        body["limit"] = limit
    headers: dict[str, str] = {}
    if retry_after_s is not None:
        headers["Retry-After"] = str(retry_after_s)
    elif status == 503:
        headers["Retry-After"] = RETRY_AFTER_S
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, headers=headers or None)


def status_of(exc: GeoServerError) -> int:
    """The HTTP status for one of our errors."""
    for kind, status in STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def log_fault(request: Request, exc: GeoServerError) -> None:
    """Our own faults go to the log: a 5xx other than 503 (which is load or an outage, not a fault)."""
    status = status_of(exc)
    if status >= 500 and status != 503:
        log.error("%s on %s", exc.code, request.url.path)


async def _ours(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GeoServerError)
    status = status_of(exc)
    log_fault(request, exc)
    retry, limit = (exc.retry_after_s, exc.limit) if isinstance(exc, Retryable) else (None, None)
    response = error_response(status, exc.code, exc.message, exc.parameter, retry_after_s=retry, limit=limit)
    if isinstance(exc, NotAllowed):
        response.headers["Allow"] = ", ".join(exc.allowed)
    return response


def from_database(request: Request, exc: Exception) -> Retryable:
    """What a database error that escaped `Database.connection` (which names them better) means for the client; a
    lost connection opens the breaker."""
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return TooExpensive("the query ran longer than allowed and was stopped")
    log.warning("database unavailable on %s: %s", request.url.path, exc.__class__.__name__)
    if is_connection_failure(exc):
        request.app.state.geoserver.db.failed(exc)
    return DatabaseUnavailable("the database is unavailable; retry shortly")


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    return await _ours(request, from_database(request, exc))


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    location = first.get("loc", ())
    parameter = str(location[-1]) if location else None
    return error_response(400, "invalid_parameter", f"invalid value for {parameter}: {first.get('msg', '')}", parameter)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = "not_found" if exc.status_code == 404 else "http_error"
    response = error_response(exc.status_code, code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s", request.url.path)
    return error_response(500, "internal_error", "an unexpected error occurred; it has been logged")


class CatchAllMiddleware(HttpMiddleware):
    """Turn an unexpected exception into the JSON 500 inside the middleware stack, so CORS headers still apply.

    Starlette sends a handler for `Exception` to its outermost middleware, outside CORS; this one sits inside.
    """

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:  # the client went while sending its request: nobody to answer, nothing broken
            log.info("client left while sending its request to %s", scope.get("path", "?"))
        except Exception:
            if started:
                raise  # too late for a clean answer: let the server close the connection
            log.exception("unexpected error on %s", scope.get("path", "?"))
            response = error_response(500, "internal_error", "an unexpected error occurred; it has been logged")
            await response(scope, receive, send)


def install(app: FastAPI) -> None:
    """Register every handler on the app, and the catch-all (added before CORS, so it runs inside it)."""
    app.add_exception_handler(GeoServerError, _ours)
    app.add_exception_handler(PoolTimeout, _database_down)
    app.add_exception_handler(psycopg.OperationalError, _database_down)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(CatchAllMiddleware)
