"""GeoReport v2 on the wire: the same records as JSON or as the specification's schemaless XML, and its errors.

GeoReport errors have a body of their own (a list of `{code, description}`, or `<errors><error>` in XML) and use
404 for what does not exist, 403 for a missing or bad api_key and 400 for other mistakes (the server's own 405, 413,
429 and 5xx stay as they are). `GeoReportRoute` gives
every open311 route that mapping, so the global handler (`geoserver/errors.py`) stays as it is for other routes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
import psycopg
from fastapi import Request, Response
from fastapi.routing import APIRoute
from psycopg_pool import PoolTimeout

from geoserver import errors
from layers.errors import GeoServerError, NotFound, Retryable

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
    """GeoReport's status for one of our errors: the server's own status for what does not exist (404), a key that
    does not open the door (403, also for a missing one), a method that does not apply (405), a body too large (413),
    limits, load and outages (429, 5xx); 400 for every other mistake of the client's."""
    status = errors.status_of(exc)
    if status == 401:
        return 403
    return status if status in (403, 404, 405, 413, 429) or status >= 500 else 400


def error_answer(fmt: str, status: int, description: str, *, retry_after_s: int | None = None) -> Response:
    """The specification's error body: one error, its code the HTTP status (a 503 always says when to retry)."""
    headers = {"Cache-Control": "no-store"}
    if retry_after_s is None and status == 503:
        retry_after_s = RETRY_AFTER_S
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
                errors.log_fault(request, exc)
                return _error(fmt, exc)
            except (PoolTimeout, psycopg.OperationalError) as exc:
                return _error(fmt, errors.from_database(request, exc))

        return georeport_handler


def _error(fmt: str, exc: GeoServerError) -> Response:
    retry = exc.retry_after_s if isinstance(exc, Retryable) else None
    return error_answer(fmt, status_of(exc), exc.message, retry_after_s=retry)


def for_path(path: str) -> bool:
    """Whether a path is GeoReport's, whose errors have GeoReport's body wherever they are answered."""
    return path == "/open311" or path.startswith("/open311/")


def path_error(path: str, status: int, description: str, *, retry_after_s: int | None = None) -> Response:
    """A GeoReport error for a path under /open311: XML for `.xml` paths, JSON otherwise."""
    return error_answer("xml" if path.endswith(".xml") else "json", status, description, retry_after_s=retry_after_s)
