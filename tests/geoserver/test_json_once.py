"""A body read once: a request handled twice (a feature edit asked again with a fresh caller) never reads it again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from geoserver.bodies import JsonOnce
from layers.errors import InvalidParameter


def _request(*messages: Message) -> tuple[Request, list[Message]]:
    """A request whose body arrives as these messages; the list empties as they are read."""
    incoming = list(messages)

    async def receive() -> Message:
        if not incoming:
            raise AssertionError("the body was read again")
        return incoming.pop(0)

    scope: dict[str, Any] = {"type": "http", "method": "PATCH", "path": "/", "headers": [], "query_string": b""}
    return Request(scope, receive), incoming


def _twice(once: JsonOnce) -> list[Any]:
    async def read() -> list[Any]:
        results: list[Any] = []
        for _ in range(2):
            try:
                results.append(await once.value())
            except Exception as exc:  # the test compares what each read gave
                results.append(exc)
        return results

    return asyncio.run(read())


def test_a_body_is_parsed_once_and_given_twice() -> None:
    request, left = _request({"type": "http.request", "body": b'{"properties": {"name": "x"}}', "more_body": False})
    first, second = _twice(JsonOnce(request))
    assert first == second == {"properties": {"name": "x"}} and left == []


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([{"type": "http.request", "body": b"{not json", "more_body": False}], InvalidParameter),
        ([{"type": "http.request", "body": b'{"a', "more_body": True}, {"type": "http.disconnect"}], ClientDisconnect),
    ],
)
def test_a_bad_or_cut_body_gives_the_same_error_twice(messages: list[Message], error: type[Exception]) -> None:
    request, left = _request(*messages)
    first, second = _twice(JsonOnce(request))
    assert isinstance(first, error) and second is first and left == []
