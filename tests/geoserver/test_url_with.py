"""Next links: a request's URL with some parameters set or removed, the others kept, always a valid URI."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from starlette.requests import Request

from geoserver.responses import url_with


def _request(query: bytes) -> Request:
    return Request({"type": "http", "method": "GET", "scheme": "http", "path": "/nearby", "raw_path": b"/nearby",
                    "root_path": "", "query_string": query, "headers": [(b"host", b"city.example:8000")]})  # fmt: skip


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"lon=-114.07&lat=51.05&limit=10", "lon=-114.07&lat=51.05&limit=10&cursor=c.1"),
        (b"lon=1&cursor=old&lat=2", "lon=1&lat=2&cursor=c.1"),  # an existing cursor is replaced, not repeated
        (b"lon=1&c%75rsor=old", "lon=1&cursor=c.1"),  # ... even when its name is percent-encoded
        (b"", "cursor=c.1"),
        (b"name=a%20b&x", "name=a%20b&x&cursor=c.1"),  # kept exactly as sent
        (b"name=a+b&q=<x>", "name=a+b&q=%3Cx%3E&cursor=c.1"),  # re-encoded: '+' is a space, '<' must be escaped
        (b'f="a"&%ZZ=1', "f=%22a%22&%25ZZ=1&cursor=c.1"),
    ],
)
def test_a_next_link_keeps_the_other_parameters_and_is_a_valid_uri(query: bytes, expected: str) -> None:
    href = url_with(_request(query), cursor="c.1")
    assert href == f"http://city.example:8000/nearby?{expected}"
    parsed = urlsplit(href)
    assert all(c.isalnum() or c in "-._~!$'()*+,;=:@/?&%" for c in parsed.query), href
    assert dict(parse_qsl(parsed.query))["cursor"] == "c.1"


def test_none_removes_a_parameter() -> None:
    assert url_with(_request(b"offset=10&limit=5"), offset=None) == "http://city.example:8000/nearby?limit=5"
