"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from geoserver import errors
from geoserver.routes import health, landing
from geoserver.settings import Settings
from geoserver.state import AppState, make_pool, running


def create_app(settings: Settings, database_url: str | None = None) -> FastAPI:
    """Build the app for a database (the settings' URL unless given). Connects to nothing until started."""
    url = database_url or settings.database_url
    if not url:
        raise ValueError("create_app needs a database URL: start the embedded cluster first, or set one")
    state = AppState(settings=settings, database_url=url, pool=make_pool(settings, url))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(state):
            yield

    app = FastAPI(
        title="City location services",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.geoserver = state
    errors.install(app)
    app.include_router(landing.router)
    app.include_router(health.router)
    return app
