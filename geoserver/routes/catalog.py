"""The public open data catalogue (DCAT JSON-LD) and whole-layer downloads."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from starlette.types import Receive, Scope, Send

from geoserver import i18n
from geoserver.auth import PrincipalDep
from geoserver.errors import error_response
from geoserver.media import JSON_LD
from geoserver.negotiation import none_match
from geoserver.responses import base_url, caching, json_response, negotiate
from geoserver.state import StateDep
from layers.catalogue.records import Layer
from layers.catalogue.visibility import ANONYMOUS
from layers.errors import NotFound
from layers.queries import dcat, downloads

router = APIRouter(tags=["catalogue"])


@router.get("/catalog", summary="The open data catalogue (DCAT, JSON-LD)", response_class=Response)
async def catalog(request: Request, state: StateDep) -> Response:
    """Every public layer as a DCAT dataset, with licence, publisher, update frequency and downloads."""
    negotiate(request, html=False)
    doc = dcat.catalog(
        state.registry.visible(ANONYMOUS),
        base_url(request),
        title={lang: i18n.text(lang, "title") for lang in i18n.LANGUAGES},
        description={lang: i18n.text(lang, "description") for lang in i18n.LANGUAGES},
    )
    return json_response(doc, public=True, media_type=JSON_LD)


def _disposition(layer: Layer, suffix: str) -> str:
    """An attachment name safe in any header, with the exact name for clients that read RFC 5987."""
    ascii_name = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in layer.id) or "layer"
    return f"attachment; filename=\"{ascii_name}.{suffix}\"; filename*=UTF-8''{quote(layer.id, safe='')}.{suffix}"


class _StoredFileResponse(FileResponse):
    """A stored download; if an edit removed the file in the instant before sending, a 503 asks to retry."""

    chunk_size = 1024 * 1024  # fewer, larger reads: each is a hop to a worker thread

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except RuntimeError:  # Starlette's "does not exist", raised before anything was sent
            gone = error_response(503, "download_replaced", "the layer changed just now; retry", retry_after_s=1)
            await gone(scope, receive, send)


@router.get("/collections/{collectionId}/download.{fmt}", summary="The whole layer as a file", response_class=Response)
async def download(collectionId: str, fmt: str, request: Request, state: StateDep, principal: PrincipalDep) -> Response:  # noqa: N803
    """GeoJSON, CSV or GeoPackage of every feature (public fields only): built once per layer version, then a file.

    Answers carry `ETag`, `Last-Modified` and `Content-Length`, and honour `If-None-Match` and `Range`.
    """
    layer = state.registry.resolve(collectionId, principal)
    chosen = downloads.BY_SUFFIX.get(fmt)
    if chosen is None:
        raise NotFound(f"no download format {fmt[:20]!r}; use one of {', '.join(downloads.BY_SUFFIX)}", parameter="fmt")
    negotiate(request, allowed=(), html=False)
    state.db.check()  # during an outage, 503 at once rather than a build that cannot connect
    stored = await state.downloads.get(layer, fmt)
    headers = {
        **caching(layer.is_public),
        "Content-Disposition": _disposition(layer, chosen.suffix),
        "ETag": stored.etag,
        "Accept-Ranges": "bytes",
    }
    if none_match(request.headers.get("if-none-match"), stored.etag):
        return Response(status_code=304, headers=headers)
    return _StoredFileResponse(stored.path, media_type=chosen.content_type, headers=headers)
