"""Shared caches (a caching proxy such as Varnish, or a CDN) told the truth.

Public answers carry `Cache-Control: public, max-age=60, s-maxage=<GEOSERVER_SHARED_MAX_AGE_S>` and a
`Surrogate-Key` header: space-separated keys naming what the answer was made from. When a change is heard, every
instance purges exactly the keys it touched, by sending each configured purge URL one request (method
`GEOSERVER_CACHE_PURGE_METHOD`, default PURGE) with those keys in its `Surrogate-Key` header: the form Varnish's
`ban` in `docs/scaling.md`'s VCL reads, and the form of Fastly's batch purge API.

Keys (layer ids percent-encoded, so a key never holds a space):
- `layer/<id>`: everything made from the layer (purged when it is reloaded, unpublished or its metadata changes);
- `tile/<id>/<z>/<x>/<y>`: its tile at this address (purged when an edit touches the tile);
- `tiles/<id>`: all its tiles (purged when an edit's extent spans too many tiles to name);
- `items/<id>`, `download/<id>`, `meta/<id>`: its pages of items, its download files, its documents (purged on edits);
- `catalogue`: answers about every layer (the list of collections, the DCAT catalogue; purged on any reload).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from urllib.parse import quote, unquote

import httpx
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geoserver.asgi import HttpMiddleware
from tiles.grids import TileXYZ, get_tms

log = logging.getLogger("geoserver.sharedcache")
PURGE_TIMEOUT_S = 2.0
# A change's extent is widened by this share of a tile at each zoom: tiles draw features a little beyond their edges.
TILE_MARGIN = 64 / 4096
MAX_KEYS_PER_REQUEST = 256
MAX_EDIT_TILES = 200  # beyond this many touched tiles, an edit purges all the layer's tiles
WRITTEN_XACT = "geoserver.written_xact"  # scope key: the transaction whose change notice a write awaits
CATALOGUE_KEY = "catalogue"  # answers about every layer: the list of collections, the catalogue, styles


def _id(layer_id: str) -> str:
    return quote(layer_id, safe="")


def layer_key(layer_id: str) -> str:
    return f"layer/{_id(layer_id)}"


def keys_for(kind: str, layer_ids: Iterable[str]) -> list[str]:
    """`kind/<id>` and `layer/<id>` for each layer (kind: items, download, meta)."""
    return [key for layer_id in layer_ids for key in (f"{kind}/{_id(layer_id)}", layer_key(layer_id))]


def tile_keys(layer_ids: Iterable[str], tile: TileXYZ) -> list[str]:
    """The keys of one (composite) tile: the tile of each layer, all tiles of each layer, and each layer."""
    return [
        key
        for layer_id in layer_ids
        for key in (f"tile/{_id(layer_id)}/{tile.z}/{tile.x}/{tile.y}", f"tiles/{_id(layer_id)}", layer_key(layer_id))
    ]


def edit_keys(layer_id: str, bbox: Sequence[float], zooms: range) -> list[str]:
    """What an edit inside `bbox` (lon/lat) makes stale: the touched tiles at every zoom, and the non-tile answers.

    An extent that touches more than MAX_EDIT_TILES tiles in all purges all the layer's tiles (`tiles/<id>`) instead.
    """
    tms = get_tms("WebMercatorQuad")
    west, south, east, north = bbox
    keys = [f"{kind}/{_id(layer_id)}" for kind in ("items", "download", "meta")]
    tiles: list[str] = []
    for z in zooms:
        margin = 360 / 2**z * TILE_MARGIN  # degrees of longitude; latitude margins at Calgary's scale are similar
        box = (max(west - margin, -180), max(south - margin, -85), min(east + margin, 180), min(north + margin, 85))
        first, last = tms.tile(box[0], box[3], z), tms.tile(box[2], box[1], z)
        count = (last.x - first.x + 1) * (last.y - first.y + 1)
        if len(tiles) + count > MAX_EDIT_TILES:
            return [*keys, f"tiles/{_id(layer_id)}"]
        tiles += [
            f"tile/{_id(layer_id)}/{z}/{x}/{y}" for x in range(first.x, last.x + 1) for y in range(first.y, last.y + 1)
        ]
    return keys + tiles


class Purger:
    """Sends purge requests for keys to every configured proxy or CDN endpoint."""

    def __init__(self, urls: Sequence[str], method: str = "PURGE", header: str = "") -> None:
        self.urls = [url.strip() for url in urls if url.strip()]
        self.method = method
        name, _, value = header.partition(":")
        self.extra = {name.strip(): value.strip()} if name.strip() and value.strip() else {}
        self._client: httpx.AsyncClient | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.urls)

    async def purge(self, keys: Sequence[str]) -> None:
        """Purge the keys everywhere; failures are logged, never raised (the caches expire by themselves)."""
        if not self.urls or not keys:
            return
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=PURGE_TIMEOUT_S)
        unique = list(dict.fromkeys(keys))
        batches = [unique[i : i + MAX_KEYS_PER_REQUEST] for i in range(0, len(unique), MAX_KEYS_PER_REQUEST)]
        await asyncio.gather(*(self._send(url, batch) for url in self.urls for batch in batches))

    async def _send(self, url: str, keys: list[str]) -> None:
        assert self._client is not None
        try:
            response = await self._client.request(
                self.method, url, headers={"Surrogate-Key": " ".join(keys), **self.extra}
            )
            if response.status_code >= 400:
                log.warning("purge at %s answered %d", url, response.status_code)
        except httpx.HTTPError as exc:
            log.warning("purge at %s failed: %s", url, type(exc).__name__)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def path_keys(path: str) -> list[str]:
    """Surrogate keys for a public answer that set none, from its path (`/collections/<id>/...`), else `catalogue`."""
    parts = path.split("/")
    if len(parts) < 3 or parts[1] != "collections" or not parts[2]:
        return [CATALOGUE_KEY]
    layer = quote(unquote(parts[2]), safe="")
    kind = {"items": "items", "download.geojson": "download", "download.csv": "download", "download.gpkg": "download"}
    return [f"{kind.get(parts[3], 'meta') if len(parts) > 3 else 'meta'}/{layer}", f"layer/{layer}"]


class SharedMaxAge(HttpMiddleware):
    """Adds `s-maxage` to every public answer (how long shared caches may keep it: purges keep them honest), and
    surrogate keys from the path to those that set none."""

    def __init__(self, app: ASGIApp, *, seconds: int) -> None:
        super().__init__(app)
        self.directive = f", s-maxage={seconds}"

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_directive(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                control = headers.get("cache-control", "")
                if control.startswith("public") and "s-maxage" not in control:
                    headers["cache-control"] = control + self.directive
                    if "surrogate-key" not in headers:
                        headers["surrogate-key"] = " ".join(path_keys(scope.get("path", "")))
            await send(message)

        await self.app(scope, receive, with_directive)


class SettleWrites:
    """A successful write answers only once this instance has acted on it (`AppState.settle`): its caches, and the
    shared caches it purges, no longer hold what the write changed when the writer reads again. A route whose write
    sent one change notice puts its transaction in the scope (`WRITTEN_XACT`): that notice is awaited."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return

        async def settled_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                await scope["app"].state.geoserver.settle(scope.get(WRITTEN_XACT))
            await send(message)

        await self.app(scope, receive, settled_send)
