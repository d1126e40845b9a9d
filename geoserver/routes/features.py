"""Features of a collection (OGC API Features Parts 1-3): pages of items and single items, as GeoJSON or HTML."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from psycopg import AsyncConnection

from geoserver import html, i18n
from geoserver.auth import PrincipalDep
from geoserver.database import Workload
from geoserver.media import GEOJSON, HTML, JSON
from geoserver.params import check_known, items_cursor, items_fingerprint, parse_items, single_values
from geoserver.responses import HeldStream, base_url, caching, link, pick_format, pick_language, url_with
from geoserver.routes.collections import collection_url
from geoserver.state import AppState, StateDep
from layers.catalogue.records import Layer
from layers.catalogue.visibility import Principal
from layers.errors import NotFound
from layers.queries import features
from layers.queries.items import ItemsQuery
from layers.queries.times import iso

router = APIRouter(tags=["features"])
ITEM_PARAMETERS = ("f", "lang", "crs")


def _links(
    request: Request, layer: Layer, query: ItemsQuery, shown: tuple[int, int], cursor: str | None, lang: str
) -> list[Any]:
    """self, alternate, collection, and next/prev links; `shown` is (features returned, number matched)."""
    t = i18n.text
    links = [
        link(url_with(request, f="json"), "self", GEOJSON, t(lang, "this_document")),
        link(url_with(request, f="html"), "alternate", HTML, t(lang, "as_html")),
        link(collection_url(base_url(request), layer), "collection", JSON, layer.title_in(lang)),
    ]
    returned, matched = shown
    pages: list[tuple[str, dict[str, str | int | None]]] = []
    if query.offset + returned < matched and returned > 0:
        # Ordered by id alone, the next page starts after this page's last id (a signed cursor): the database
        # then skips nothing, however deep the page. Otherwise, and for clients that send offsets, by offset.
        after: dict[str, str | int | None] = {"cursor": cursor, "offset": None}
        pages.append(("next", after if cursor else {"offset": query.offset + query.limit, "cursor": None}))
    if query.offset > 0:
        pages.append(("prev", {"offset": max(query.offset - query.limit, 0), "cursor": None}))
    for rel, where in pages:
        for f, media_type in (("json", GEOJSON), ("html", HTML)):
            href = url_with(request, **where, limit=query.limit, f=f)
            links.append(link(href, rel, media_type, t(lang, rel)))
    return links


def _cursor(
    state: AppState, layer: Layer, query: ItemsQuery, page: features.Page, values: dict[str, str]
) -> str | None:
    """The next page's keyset cursor, when the order allows one."""
    if not query.keyset or page.last_id is None:
        return None
    return state.cursors.encode_values([query.offset + query.limit, page.last_id], items_fingerprint(layer, values))


def _tail(links: list[Any], matched: int, returned: int) -> bytes:
    stamp = iso(datetime.now(UTC).replace(microsecond=0))
    return (
        b'],"numberMatched":' + str(matched).encode() + b',"numberReturned":' + str(returned).encode()
        + b',"timeStamp":"' + stamp.encode() + b'","links":' + orjson.dumps(links) + b"}"
    )  # fmt: skip


def _shareable(layer: Layer, query: ItemsQuery) -> bool:
    """Whether shared caches may keep the answer: public data, and no one's position in the question."""
    return layer.is_public and query.near is None


def _headers(layer: Layer, query: ItemsQuery, lang: str) -> dict[str, str]:
    return {**caching(_shareable(layer, query), lang), "Content-Crs": query.crs.header}


@router.get("/collections/{collectionId}/items", summary="Features of a collection", response_class=Response)
async def items(collectionId: str, request: Request, state: StateDep, principal: PrincipalDep) -> Response:  # noqa: N803
    """A page of features: filtered by bbox, datetime, properties or CQL2, sorted, in any supported CRS."""
    layer = state.registry.resolve(collectionId, principal)
    values = single_values(request.query_params.multi_items())
    fmt = pick_format(request, values.get("f"))
    lang = pick_language(request, values)
    if _looks_heavy(values):
        state.heavy.check(request.scope)  # before parsing a long filter: a client over its share costs nothing
    query = items_cursor(layer, parse_items(layer, values), values, state.cursors)
    if fmt == "html" or query.limit <= features.STREAM_ABOVE:
        statements = features.build(layer, query)  # every name and value is checked here, before a connection
        async with _connection(request, state, principal, layer, query) as conn:
            page = await features.fetch_page(conn, layer, query, statements)
        shown = (len(page.features), page.number_matched)
        links = _links(request, layer, query, shown, _cursor(state, layer, query, page, values), lang)
        if fmt == "html":
            return _items_html(request, layer, page, links, lang, public=_shareable(layer, query))
        body = (
            b'{"type":"FeatureCollection","features":['
            + ",".join(page.features).encode()
            + _tail(links, page.number_matched, len(page.features))
        )
        return Response(body, media_type=GEOJSON, headers=_headers(layer, query, lang))
    return await _streamed(request, state, principal, layer, query, lang)


def _looks_heavy(values: dict[str, str]) -> bool:
    limit = values.get("limit", "").strip()
    return "filter" in values or (limit.isdigit() and int(limit[:9]) > features.STREAM_ABOVE)


@asynccontextmanager
async def _connection(
    request: Request, state: AppState, principal: Principal, layer: Layer, query: ItemsQuery
) -> AsyncIterator[AsyncConnection[Any]]:
    """A connection for this page: CQL2 filters and very large pages are heavy work, with limits of their own.

    Heavy work takes the heavy pool, at most `heavy_per_client` at once per address, and anonymous callers get the
    shorter statement timeout.
    """
    if query.filter is None and query.limit <= features.STREAM_ABOVE:
        async with state.db.read([layer.id], anonymous=principal.is_anonymous) as conn:
            yield conn
        return
    timeout_ms = state.settings.anonymous_heavy_timeout_ms if principal.is_anonymous else None
    async with state.heavy.hold(request.scope), state.db.connection(Workload.HEAVY, timeout_ms=timeout_ms) as conn:
        yield conn


async def _streamed(
    request: Request, state: AppState, principal: Principal, layer: Layer, query: ItemsQuery, lang: str
) -> Response:
    """A large page, sent as it is read: memory holds one chunk of features, never the whole page."""
    statements = features.build(layer, query, count_in_page=False)
    # The connection (and the heavy share) is taken before the answer starts and kept until it ends: a page refused
    # for want of either is a JSON error, never a 200 cut off mid-stream.
    async with AsyncExitStack() as stack:  # released here if the count fails; else handed to the answer
        conn = await stack.enter_async_context(_connection(request, state, principal, layer, query))
        matched = await features.count(conn, statements, layer)
        held = stack.pop_all()
    expected = max(0, min(query.limit, matched - query.offset))
    # The last id is not known before the page streams: the next link of a streamed page goes by offset.
    links = _links(request, layer, query, (expected, matched), None, lang)

    async def body() -> AsyncIterator[bytes]:
        returned = 0
        yield b'{"type":"FeatureCollection","features":['
        async for chunk in features.stream_page(conn, statements):
            yield (b"," if returned else b"") + ",".join(chunk).encode()
            returned += len(chunk)
        yield _tail(links, matched, returned)

    return HeldStream(body(), held=held, media_type=GEOJSON, headers=_headers(layer, query, lang))


def _items_html(
    request: Request, layer: Layer, page: features.Page, links: list[Any], lang: str, *, public: bool
) -> Response:
    context = {
        "base": base_url(request),
        "collection_id": layer.id,
        "title": layer.title_in(lang),
        "features": [orjson.loads(f) for f in page.features],
        "field_names": layer.field_names,
        "number_matched": page.number_matched,
        "links": links,
    }
    return html.render("items.html", context, lang=lang, public=public)


@router.get("/collections/{collectionId}/items/{featureId}", summary="One feature", response_class=Response)
async def item(
    collectionId: str,  # noqa: N803
    featureId: str,  # noqa: N803
    request: Request,
    state: StateDep,
    principal: PrincipalDep,
) -> Response:
    """One feature by id; 404 when there is none (or the caller may not see its collection)."""
    layer = state.registry.resolve(collectionId, principal)
    values = single_values(request.query_params.multi_items())
    check_known(values, ITEM_PARAMETERS)
    fmt = pick_format(request, values.get("f"))
    lang = pick_language(request, values)
    query = parse_items(layer, {k: v for k, v in values.items() if k == "crs"})
    fid = features.id_value(layer, featureId)
    found = None
    if fid is not None:
        async with state.db.read([layer.id], anonymous=principal.is_anonymous) as conn:
            found = await features.fetch_feature(conn, layer, fid, query.crs)
    if found is None:
        raise NotFound(f"no feature {featureId[:80]!r} in this collection", parameter="featureId")
    text, etag = found
    collection = collection_url(base_url(request), layer)
    links = [
        link(url_with(request, f="json"), "self", GEOJSON, i18n.text(lang, "this_document")),
        link(url_with(request, f="html"), "alternate", HTML, i18n.text(lang, "as_html")),
        link(collection, "collection", JSON, layer.title_in(lang)),
    ]
    if fmt == "html":
        context = {
            "base": base_url(request),
            "collection_id": layer.id,
            "title": layer.title_in(lang),
            "feature": orjson.loads(text),
            "links": links,
        }
        return html.render("item.html", context, lang=lang, public=layer.is_public)
    body = text[:-1].encode() + b',"links":' + orjson.dumps(links) + b"}"
    return Response(body, media_type=GEOJSON, headers={**_headers(layer, query, lang), "ETag": etag})
