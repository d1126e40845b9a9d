"""Which address limits apply to, and the rate limiter in front of an app, driven through ASGI from many addresses."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from geoserver.clients import RateLimitMiddleware, client_address, parse_networks
from layers.errors import InvalidParameter

PROXIES = parse_networks("10.0.0.0/8, 192.0.2.7")


def _scope(peer: str, forwarded: str | None = None) -> Scope:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return {"type": "http", "client": (peer, 5000), "headers": headers}


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # not a trusted proxy: its header is ignored
        ("10.1.2.3", "198.51.100.1", "198.51.100.1"),
        ("10.1.2.3", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # the client may write anything on the left
        ("192.0.2.7", "198.51.100.1, 10.9.9.9", "198.51.100.1"),  # through two proxies of ours
        ("10.1.2.3", None, "10.1.2.3"),
    ],
)
def test_the_client_address_believes_only_trusted_proxies(peer: str, forwarded: str | None, expected: str) -> None:
    assert client_address(_scope(peer, forwarded), PROXIES) == expected


def test_a_bad_proxy_range_is_refused() -> None:
    with pytest.raises(InvalidParameter):
        parse_networks("10.0.0.0/8, not-an-address")


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _statuses(limiter: RateLimitMiddleware, peer: str, count: int, forwarded: str | None = None) -> list[int]:
    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=limiter, client=(peer, 5000))
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return [(await http.get("/", headers=headers)).status_code for _ in range(count)]

    return asyncio.run(run())


def test_each_address_has_its_own_budget() -> None:
    limiter = RateLimitMiddleware(_ok, rates="3/minute", trusted=PROXIES, loopback=False)
    assert _statuses(limiter, "203.0.113.9", 4) == [200, 200, 200, 429]
    assert _statuses(limiter, "203.0.113.10", 3) == [200, 200, 200]
    # Behind the proxy, each forwarded address counts on its own; a forged header does not buy a new budget.
    assert _statuses(limiter, "10.0.0.5", 4, forwarded="198.51.100.1") == [200, 200, 200, 429]
    assert _statuses(limiter, "10.0.0.5", 1, forwarded="198.51.100.2") == [200]
    assert _statuses(limiter, "203.0.113.9", 1, forwarded="198.51.100.3") == [429]


def test_loopback_is_limited_only_when_asked() -> None:
    free = RateLimitMiddleware(_ok, rates="2/minute", trusted=(), loopback=False)
    assert set(_statuses(free, "127.0.0.1", 5)) == {200}
    strict = RateLimitMiddleware(_ok, rates="2/minute", trusted=(), loopback=True)
    assert _statuses(strict, "127.0.0.1", 3) == [200, 200, 429]


def test_an_empty_rate_turns_the_limiter_off() -> None:
    off = RateLimitMiddleware(_ok, rates="", trusted=(), loopback=True)
    assert set(_statuses(off, "203.0.113.9", 20)) == {200}


def test_a_rate_limited_georeport_path_gets_georeport_errors() -> None:
    limiter = RateLimitMiddleware(_ok, rates="1/minute", trusted=(), loopback=False)

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=limiter, client=("203.0.113.9", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            paths = ["/open311/v2/services.json", "/open311/v2/services.json", "/open311/v2/services.xml", "/tiles"]
            return [await http.get(path) for path in paths]

    first, as_json, as_xml, elsewhere = asyncio.run(run())
    assert first.status_code == 200
    assert as_json.status_code == 429 and as_json.json()[0]["code"] == 429 and int(as_json.headers["retry-after"]) > 0
    assert as_xml.status_code == 429 and ET.fromstring(as_xml.content).findtext("error/code") == "429"
    assert elsewhere.status_code == 429 and elsewhere.json()["code"] == "rate_limited"
