"""Request bodies: JSON read with a size limit as it arrives (413 past it), never trusted to be what it claims."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import Request

from layers.errors import InvalidParameter, TooLarge

MAX_JSON_BYTES = 50 * 1024 * 1024
MAX_FORM_BYTES = 64 * 1024  # an Open311 request: 4,000 characters of description and a few short fields
MAX_FORM_FIELDS = 200
FORM = "application/x-www-form-urlencoded"


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, read as it arrives; 413 as soon as it is larger than `max_bytes`."""
    size = f"{max_bytes // 1024**2} MB" if max_bytes >= 1024**2 else f"{max_bytes // 1024} KB"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"the body is larger than {size}", parameter="body")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise TooLarge(f"the body is larger than {size}", parameter="body")
    return bytes(body)


async def read_form(request: Request, max_bytes: int = MAX_FORM_BYTES) -> dict[str, list[str]]:
    """An `application/x-www-form-urlencoded` body as {name: [values]}; 400 for another type, bad UTF-8 or too many
    fields, 413 past `max_bytes`."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != FORM:
        raise InvalidParameter(f"send the fields as {FORM}", parameter="body")
    body = await read_body(request, max_bytes)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS, errors="strict")
    except ValueError:  # UnicodeDecodeError included
        message = f"the body is not UTF-8 form fields, or has more than {MAX_FORM_FIELDS}"
        raise InvalidParameter(message, parameter="body") from None
    form: dict[str, list[str]] = {}
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


async def read_json(request: Request, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The body parsed as JSON; 413 when it is larger than `max_bytes`, 400 when it is not JSON."""
    body = await read_body(request, max_bytes)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidParameter("the body is not valid JSON", parameter="body") from None


async def json_object(request: Request) -> dict[str, Any]:
    """The request's JSON object body (a merge-patch document), 400 when it is not one."""
    body = await read_json(request, 1024 * 1024)
    if not isinstance(body, dict):
        raise InvalidParameter("the body must be a JSON object", parameter="body")
    return body


class JsonOnce:
    """A request's JSON body, read when first asked for and at most once: a request handled twice (a feature edit
    asked again with its caller looked up afresh) gets the same value, or the same error, the second time."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self._read: tuple[Any, Exception | None] | None = None

    async def value(self) -> Any:
        """The parsed body (`read_json`'s limits and errors)."""
        if self._read is None:
            try:
                self._read = (await read_json(self.request), None)
            except Exception as exc:  # a bad body, or the client gone: the same the second time, never a re-read
                self._read = (None, exc)
        value, error = self._read
        if error is not None:
            raise error
        return value
