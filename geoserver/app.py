"""The FastAPI application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from geoserver import csp, errors, openapi
from geoserver.csp import ContentSecurityPolicyMiddleware
from geoserver.keys import cursor_secret
from geoserver.metrics import Metrics, MetricsMiddleware
from geoserver.routes import catalog, collections, features, health, landing
from geoserver.routes import metrics as metrics_routes
from geoserver.routes import nearby as nearby_routes
from geoserver.routes import search as search_routes
from geoserver.routes import styles as styles_routes
from geoserver.routes import tiles as tiles_routes
from geoserver.routes import web as web_routes
from geoserver.settings import Settings
from geoserver.state import AppState, make_pool, running
from layers.queries.cursor import CursorSigner
from tiles.cache import TileCache


def app_from_environment() -> FastAPI:
    """The app for a uvicorn worker process: settings and database URL from the environment."""
    return create_app(Settings())


def create_app(settings: Settings, database_url: str | None = None) -> FastAPI:
    """Build the app for a database (the settings' URL unless given). Connects to nothing until started."""
    url = database_url or settings.database_url
    if not url:
        raise ValueError("create_app needs a database URL: start the embedded cluster first, or set one")
    state = AppState(
        settings=settings,
        database_url=url,
        pool=make_pool(settings, url),
        tile_cache=TileCache(max_bytes=settings.tile_cache_mb * 1024 * 1024),
        cursors=CursorSigner(cursor_secret(settings)),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(state):
            # Everything imported and built so far lives as long as the process: move it out of the garbage
            # collector's sight, so full collections stay short (they caused 60-115 ms pauses under load).
            gc.freeze()
            yield

    app = FastAPI(
        title="City location services",
        version="0.1.0",
        lifespan=lifespan,
        # FastAPI's own /docs and /redoc load their scripts from a public CDN: /docs is served from here instead.
        docs_url=None,
        redoc_url=None,
    )
    app.state.geoserver = state
    app.state.metrics = Metrics(state.tile_cache)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    errors.install(app)
    app.add_middleware(ContentSecurityPolicyMiddleware, policy_text=csp.policy(settings.basemap_style_url))
    # Open data: any web page may read it. Credentials travel as bearer tokens, never cookies.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "HEAD", "OPTIONS"],
        allow_headers=["Authorization", "If-None-Match", "Accept-Language"],
        expose_headers=["ETag", "Content-Crs", "Location", "X-Tile-Cache", "Retry-After"],
    )
    app.include_router(landing.router)
    app.include_router(collections.router)
    app.include_router(features.router)
    app.include_router(catalog.router)
    app.include_router(health.router)
    app.include_router(nearby_routes.router)
    app.include_router(search_routes.router)
    app.include_router(tiles_routes.router)
    app.include_router(styles_routes.router)
    app.include_router(metrics_routes.router)
    app.include_router(web_routes.router)
    openapi.install(app)
    return app
