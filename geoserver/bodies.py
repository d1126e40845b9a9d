"""Request bodies: JSON read with a size limit as it arrives (413 past it), never trusted to be what it claims."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from layers.errors import InvalidParameter, TooLarge

MAX_JSON_BYTES = 50 * 1024 * 1024


async def read_json(request: Request, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The body parsed as JSON; 413 when it is larger than `max_bytes`, 400 when it is not JSON."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"the body is larger than {max_bytes // 1024**2} MB", parameter="body")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise TooLarge(f"the body is larger than {max_bytes // 1024**2} MB", parameter="body")
    try:
        return orjson.loads(bytes(body))
    except orjson.JSONDecodeError:
        raise InvalidParameter("the body is not valid JSON", parameter="body") from None


async def json_object(request: Request) -> dict[str, Any]:
    """The request's JSON object body (a merge-patch document), 400 when it is not one."""
    body = await read_json(request, 1024 * 1024)
    if not isinstance(body, dict):
        raise InvalidParameter("the body must be a JSON object", parameter="body")
    return body
