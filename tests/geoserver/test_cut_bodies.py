"""A request body cut off by its client is the client's doing: no error logged, no 500 counted."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message

from tests.support.access import issue


def _cut_post(client: TestClient, path: str, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    """POST `path` with the first bytes of a body, then the client goes; the messages the app sent."""
    incoming: list[Message] = [
        {"type": "http.request", "body": b'{"type": "Feature", "prop', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"content-length", b"5000"), *headers],
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80), "state": {},
    }  # fmt: skip
    assert client.portal is not None
    client.portal.call(client.app, scope, receive, send)
    return sent


def test_a_body_cut_off_by_its_client_is_not_an_unexpected_error(
    client: TestClient, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = issue(database_url, "gis@cut-bodies", staff=True)
    headers = [(b"authorization", f"Bearer {token}".encode()), (b"content-type", b"application/geo+json")]
    with caplog.at_level(logging.INFO):
        sent = _cut_post(client, "/collections/facilities/items", headers)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    statuses = [m["status"] for m in sent if m["type"] == "http.response.start"]
    assert all(status < 500 for status in statuses), statuses
    metrics = client.get("/metrics").text
    route = "/collections/{collection_id}/items"
    counted = [line for line in metrics.splitlines() if route in line and "_total{" in line]
    assert any('status="499"' in line for line in counted), counted
    assert not any('status="500"' in line for line in counted), counted
