"""GeoReport v2 on the wire: the same records as JSON or as the specification's schemaless XML, and its errors.

GeoReport errors have a body of their own (a list of `{code, description}`, or `<errors><error>` in XML) and use
404 for what does not exist, 403 for a missing or bad api_key and 400 for anything else. `GeoReportRoute` gives
every open311 route that mapping, so the global handler (`geoserver/errors.py`) stays as it is for other routes.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
import psycopg
from fastapi import Request, Response
from fastapi.routing import APIRoute
from psycopg_pool import PoolTimeout

from layers.errors import (
    DatabaseUnavailable,
    Forbidden,
    GeoServerError,
    NotAllowed,
    NotFound,
    QuotaExceeded,
    Unauthorized,
)

log = logging.getLogger("geoserver.georeport")
FORMATS = ("json", "xml")
MEDIA = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}
# The Spark convention: a container element holds repeated elements of one name.
ITEM_NAMES = {"services": "service", "attributes": "attribute", "values": "value", "endpoints": "endpoint",
              "formats": "format", "service_requests": "request", "errors": "error"}  # fmt: skip
RETRY_AFTER_S = 5


def check_format(fmt: str) -> str:
    """`json` or `xml`, from the path's suffix; anything else does not exist here (404)."""
    if fmt not in FORMATS:
        raise NotFound("the format must be .json or .xml", parameter="format")
    return fmt


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _element(name: str, value: Any) -> ET.Element:
    element = ET.Element(name)
    if isinstance(value, dict):
        element.extend(_element(key, item) for key, item in value.items())
    elif isinstance(value, list | tuple):
        element.extend(_element(ITEM_NAMES.get(name, "item"), item) for item in value)
    else:
        element.text = _text(value)
    return element


def to_xml(root: str, body: Any) -> bytes:
    """The body as GeoReport XML under `root`, with the declaration the specification asks for."""
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(_element(root, body), encoding="utf-8",
                                                                     xml_declaration=False)  # fmt: skip


def answer(fmt: str, root: str, body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A GeoReport answer in `fmt`; `root` names the XML root element (JSON has none)."""
    content = orjson.dumps(body) if fmt == "json" else to_xml(root, body)
    return Response(content, status_code=status, media_type=MEDIA[fmt], headers=headers)


def status_of(exc: GeoServerError) -> int:
    """GeoReport's status for one of our errors."""
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Unauthorized | Forbidden):
        return 403
    if isinstance(exc, QuotaExceeded):
        return 429
    if isinstance(exc, DatabaseUnavailable):
        return 503
    if isinstance(exc, NotAllowed):
        return 405
    return 400


def error_answer(fmt: str, status: int, description: str, *, retry_after_s: int | None = None) -> Response:
    """The specification's error body: one error, its code the HTTP status."""
    headers = {"Cache-Control": "no-store"}
    if retry_after_s is not None:
        headers["Retry-After"] = str(retry_after_s)
    return answer(fmt if fmt in FORMATS else "json", "errors", [{"code": status, "description": description}],
                  status=status, headers=headers)  # fmt: skip


class GeoReportRoute(APIRoute):
    """A route whose errors answer in GeoReport's format, in the format the path asked for."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def georeport_handler(request: Request) -> Response:
            fmt = request.path_params.get("fmt") or "json"  # stats (JSON or CSV) answers its errors in JSON
            try:
                return await handler(request)
            except GeoServerError as exc:
                status = status_of(exc)
                retry = exc.retry_after_s if isinstance(exc, QuotaExceeded) else None
                return error_answer(fmt, status, exc.message, retry_after_s=retry or (5 if status == 503 else None))
            except (PoolTimeout, psycopg.OperationalError) as exc:
                log.warning("database unavailable on %s: %s", request.url.path, exc.__class__.__name__)
                return error_answer(fmt, 503, "the database is unavailable; retry shortly", retry_after_s=RETRY_AFTER_S)

        return georeport_handler
