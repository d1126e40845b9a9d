"""Uploading as a community group would: multipart form posts with a bearer token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of a token."""
    return {"Authorization": f"Bearer {token}"}


def geojson_bytes(features: list[tuple[dict[str, Any], dict[str, Any] | None]]) -> bytes:
    """A FeatureCollection of (properties, geometry) pairs."""
    return json.dumps(
        {
            "type": "FeatureCollection",
            "features": [{"type": "Feature", "properties": p, "geometry": g} for p, g in features],
        }  # fmt: skip
    ).encode()


def upload(client: TestClient, token: str | None, name: str, content: bytes, **fields: str) -> Any:
    """POST /collections with one file and these form fields."""
    headers = bearer(token) if token else {}
    return client.post("/collections", files={"file": (name, content)}, data=fields, headers=headers)


def replace(client: TestClient, token: str, layer: str, name: str, content: bytes) -> Any:
    """PUT /collections/{layer}/data with one file."""
    from urllib.parse import quote

    return client.put(f"/collections/{quote(layer, safe='')}/data", files={"file": (name, content)},
                      headers=bearer(token))  # fmt: skip


def leftovers(data_dir: Path) -> list[Path]:
    """Upload folders still on disk (every request must clean up after itself)."""
    root = data_dir / "uploads"
    return sorted(root.iterdir()) if root.exists() else []
