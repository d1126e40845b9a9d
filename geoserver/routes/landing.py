"""The landing page."""

from __future__ import annotations

from fastapi import APIRouter, Request

router = APIRouter(tags=["capabilities"])


@router.get("/", summary="Landing page")
async def landing(request: Request) -> dict[str, object]:
    """What this server is, and where to go next."""
    base = str(request.base_url).rstrip("/")
    return {
        "title": "City location services (Calgary demo)",
        "description": "Open City layers as feature collections and vector tiles, with services near you.",
        "links": [
            {"rel": "self", "href": f"{base}/", "type": "application/json"},
            {"rel": "service-desc", "href": f"{base}/openapi.json", "type": "application/json"},
            {"rel": "health", "href": f"{base}/health", "type": "application/json"},
            {"rel": "ready", "href": f"{base}/ready", "type": "application/json"},
        ],
    }
