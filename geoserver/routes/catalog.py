"""The public open data catalogue (DCAT JSON-LD) and whole-layer downloads."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from geoserver import i18n
from geoserver.auth import PrincipalDep
from geoserver.media import JSON_LD
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


@router.get("/collections/{collectionId}/download.{fmt}", summary="The whole layer as a file", response_class=Response)
async def download(collectionId: str, fmt: str, request: Request, state: StateDep, principal: PrincipalDep) -> Response:  # noqa: N803
    """GeoJSON, CSV or GeoPackage of every feature (public fields only), streamed in bounded memory."""
    layer = state.registry.resolve(collectionId, principal)
    chosen = downloads.BY_SUFFIX.get(fmt)
    if chosen is None:
        raise NotFound(f"no download format {fmt[:20]!r}; use one of {', '.join(downloads.BY_SUFFIX)}", parameter="fmt")
    negotiate(request, allowed=(), html=False)
    media_type = chosen.content_type
    headers = {**caching(layer.is_public), "Content-Disposition": _disposition(layer, chosen.suffix)}
    if fmt == "gpkg":
        async with state.pool.connection() as conn:
            handle = await downloads.build_geopackage(conn, layer)
        headers["Content-Length"] = str(os.fstat(handle.fileno()).st_size)
        return StreamingResponse(downloads.file_chunks(handle), media_type=media_type, headers=headers)
    writer = downloads.geojson if fmt == "geojson" else downloads.csv

    async def body() -> AsyncIterator[bytes]:
        # The connection is taken inside the generator: a response that never starts holds none.
        async with state.pool.connection() as conn:
            async for block in writer(conn, layer):
                yield block

    return StreamingResponse(body(), media_type=media_type, headers=headers)
