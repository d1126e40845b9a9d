"""A streamed answer takes its connection and its heavy share before it starts: a refusal is a JSON error, never a
200 cut off mid-stream (once, two large pages from one address passed the check together and one of them broke)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Message

from tests.support.servers import ready_app

LARGE_PAGE = ("/collections/service_requests/items", b"limit=1001")  # over 1,000: streamed, heavy work


@pytest.fixture(scope="module")
def one_heavy_each(database_url: str, demo_city: dict[str, str], app_data_dir: Path) -> Iterator[TestClient]:
    """An app on which each address runs one heavy request at a time."""
    with ready_app(database_url, app_data_dir, heavy_per_client=1) as client:
        yield client


def _scope(path: str, query: bytes) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "",
        "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }  # fmt: skip


async def _two_large_pages(app: ASGIApp) -> tuple[list[Message], list[Message]]:
    """The first page is held just as its answer starts; the second asks meanwhile, from the same address."""
    started, go_on = asyncio.Event(), asyncio.Event()
    first: list[Message] = []
    second: list[Message] = []

    def receiver() -> Any:
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # neither more body nor a disconnect
            raise AssertionError("unreachable")

        return receive

    async def hold_at_start(message: Message) -> None:
        first.append(message)
        if message["type"] == "http.response.start":
            started.set()
            await go_on.wait()

    async def collect(message: Message) -> None:
        second.append(message)

    async def first_page() -> None:
        await app(_scope(*LARGE_PAGE), receiver(), hold_at_start)

    task = asyncio.create_task(first_page())
    await asyncio.wait_for(started.wait(), 60)
    await asyncio.wait_for(app(_scope(*LARGE_PAGE), receiver(), collect), 60)
    go_on.set()
    await asyncio.wait_for(task, 60)
    return first, second


def _answer(messages: list[Message]) -> tuple[int, bytes]:
    status = next(m["status"] for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    assert messages[-1]["type"] == "http.response.body" and not messages[-1].get("more_body"), "answer not ended"
    return status, body


def test_a_second_large_page_meanwhile_is_a_json_429_and_the_first_completes(one_heavy_each: TestClient) -> None:
    portal = one_heavy_each.portal
    assert portal is not None
    first, second = portal.call(_two_large_pages, one_heavy_each.app)
    status, body = _answer(second)
    assert status == 429, body[:300]
    assert json.loads(body)["limit"] == "heavy_per_client"
    status, body = _answer(first)
    page = json.loads(body)  # whole: the stream was not cut off
    assert status == 200 and page["type"] == "FeatureCollection" and page["numberReturned"] == len(page["features"])
    assert page["numberReturned"] > 0
    # The share was given back when the first answer ended: the same address may ask again.
    again = one_heavy_each.get(LARGE_PAGE[0], params={"limit": 1001})
    assert again.status_code == 200 and again.json()["numberReturned"] == page["numberReturned"]
