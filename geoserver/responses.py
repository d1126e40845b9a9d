"""Shaping responses of the OGC API routes: format and language negotiation, links, caching headers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode

import orjson
from fastapi import Request, Response
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from geoserver import i18n
from geoserver.media import HTML, JSON, JSON_TYPES
from geoserver.negotiation import weighted
from geoserver.params import check_known, single_values
from layers.errors import InvalidParameter

PUBLIC_MAX_AGE_S = 60
PRIVATE = "private, no-store"


@dataclass(frozen=True)
class Negotiated:
    """What a request asked for: its parameters (each once), format and language."""

    values: dict[str, str]
    format: str  # "json" or "html"
    lang: str


def negotiate(request: Request, *, allowed: Iterable[str] = ("f", "lang"), html: bool = True) -> Negotiated:
    """Check the parameters and pick format (`f=`, then Accept) and language (`lang=`, then Accept-Language)."""
    values = single_values(request.query_params.multi_items())
    check_known(values, allowed)
    return Negotiated(values, pick_format(request, values.get("f"), html=html), pick_language(request, values))


def pick_language(request: Request, values: dict[str, str]) -> str:
    """The response language."""
    return i18n.negotiate(values.get("lang"), request.headers.get("accept-language"))


def pick_format(request: Request, f: str | None, *, html: bool = True) -> str:
    """`json` or `html`: `f=` wins; otherwise HTML only when the Accept header prefers it (browsers)."""
    formats = {"json": "json", "geojson": "json", "jsonld": "json"}
    if html:
        formats["html"] = "html"
    if f is not None:
        chosen = formats.get(f.strip().lower())
        if chosen is None:
            raise InvalidParameter(f"f must be one of {', '.join(formats)}", parameter="f")
        return chosen
    if html and _prefers_html(request.headers.get("accept", "")):
        return "html"
    return "json"


def _prefers_html(accept: str) -> bool:
    best_html, best_json = 0.0, 0.0
    for media, q in weighted(accept):
        if media in (HTML, "application/xhtml+xml"):
            best_html = max(best_html, q)
        elif media in JSON_TYPES or media.endswith("+json"):
            best_json = max(best_json, q)
    return best_html > best_json


def base_url(request: Request) -> str:
    """The server's root URL, without a trailing slash."""
    return str(request.base_url).rstrip("/")


# A query string every character of which may stand in a URI's query as it is (RFC 3986), with no space written as
# `+` and every `%` starting an escape: such a query is kept as sent. Any other is parsed and encoded again.
_PLAIN_QUERY = re.compile(r"(?:[A-Za-z0-9\-._~!$'()*,;=:@/?&]|%[0-9A-Fa-f]{2})*")


def url_with(request: Request, **changes: str | int | None) -> str:
    """This request's URL with some parameters set (or removed, for None), the others kept in their order."""
    url = request.url
    names = {name.replace("_", "-") for name in changes}
    added = urlencode({name.replace("_", "-"): str(v) for name, v in changes.items() if v is not None})
    if _PLAIN_QUERY.fullmatch(url.query):  # the usual case (a next link on every near-me page): no re-encoding
        kept = [part for part in url.query.split("&") if part and unquote(part.partition("=")[0]) not in names]
        return str(url.replace(query="&".join([*kept, added] if added else kept)))
    kept_params = urlencode([(k, v) for k, v in request.query_params.multi_items() if k not in names])
    return str(url.replace(query="&".join(part for part in (kept_params, added) if part)))


def link(href: str, rel: str, media_type: str | None = None, title: str | None = None, **extra: Any) -> dict[str, Any]:
    """One link object."""
    item: dict[str, Any] = {"href": href, "rel": rel}
    if media_type is not None:
        item["type"] = media_type
    if title is not None:
        item["title"] = title
    item.update(extra)
    return item


def self_links(request: Request, lang: str, json_type: str = JSON) -> list[dict[str, Any]]:
    """`self` (JSON) and `alternate` (HTML) links of a document."""
    return [
        link(url_with(request, f="json"), "self", json_type, i18n.text(lang, "this_document")),
        link(url_with(request, f="html"), "alternate", HTML, i18n.text(lang, "as_html")),
    ]


def caching(public: bool, lang: str | None = None) -> dict[str, str]:
    """Cache headers: shared caches may keep public data; nothing else is stored anywhere."""
    headers = {"Vary": "Authorization, Accept, Accept-Language"}
    if public:
        headers["Cache-Control"] = f"public, max-age={PUBLIC_MAX_AGE_S}"
    else:
        headers["Cache-Control"] = PRIVATE
    if lang is not None:
        headers["Content-Language"] = lang
    return headers


def json_response(
    body: Any,
    *,
    public: bool,
    lang: str | None = None,
    media_type: str = JSON,
    headers: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    """A JSON response with the caching headers."""
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=media_type,
        headers={**caching(public, lang), **(headers or {})},
    )


class HeldStream(StreamingResponse):
    """A streamed answer whose resources (a connection, a heavy share) were taken before it started.

    Taking them before the answer starts means a refusal is still a JSON 429 or 503, never a stream cut off after
    its 200; `held` is closed when the answer ends, however it ends (sent, failed, or its client gone).
    """

    def __init__(self, content: AsyncIterable[bytes], *, held: AsyncExitStack, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.held = held

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.held.aclose()
