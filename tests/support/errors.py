"""Checks of the JSON error answers that every bad input gets."""

from __future__ import annotations

from typing import Any, Protocol

# What an error answer must never show: a stack trace, SQL, the driver, the layer schema, a requester, a server path.
LEAKS = ("Traceback", "SELECT", "psycopg", "layer_data", "requester_contact@", "/work/")


class Answer(Protocol):
    """An HTTP response of any of the test clients (the app's TestClient, httpx)."""

    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


def assert_invalid_parameter(response: Answer, parameter: str) -> None:
    """A 400 `invalid_parameter` that names `parameter`, with nothing of the server's inside in it."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "invalid_parameter" and body["parameter"] == parameter, body
    for leak in LEAKS:
        assert leak not in response.text, leak
