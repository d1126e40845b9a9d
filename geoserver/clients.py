"""Limits per client address: how often it may ask (rate limiting), and how much heavy work it may run at once.

The address is the TCP peer's, unless the peer is one of the configured trusted proxies: then it is the nearest
address in `X-Forwarded-For` that is not itself a trusted proxy (anything further left could be made up by the
client). Local clients (loopback, or a peer without an IP address such as a Unix socket's) are not rate limited
unless the settings say so: tests and local tools run there.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from geoserver import georeport
from geoserver.errors import error_response
from layers.errors import InvalidParameter, QuotaExceeded

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "unknown"


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated addresses or CIDR ranges, e.g. `10.0.0.0/8, 192.0.2.7`."""
    networks: list[Network] = []
    for part in text.split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise InvalidParameter(f"not an address or CIDR range: {part.strip()!r}") from None
    return tuple(networks)


def _within(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(scope: Scope, trusted: Sequence[Network]) -> str:
    """The address limits apply to (see the module's docstring)."""
    peer = (scope.get("client") or (UNKNOWN, 0))[0]
    if not trusted or not _within(peer, trusted):
        return str(peer)
    forwarded = Headers(scope=scope).get("x-forwarded-for", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _within(hop, trusted):
            return hop
    return hops[0] if hops else str(peer)


def is_local(address: str) -> bool:
    """Loopback, or no IP address at all (a Unix socket's peer, an in-process test client)."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return True


@dataclass
class HeavySlots:
    """How many heavy requests each client address runs right now; at most `per_client` at once."""

    per_client: int
    trusted: tuple[Network, ...] = ()
    running: Counter[str] = field(default_factory=Counter)

    def check(self, scope: Scope) -> str:
        """The client's address, or 429 when it already runs its share (cheap: call it before parsing anything)."""
        address = client_address(scope, self.trusted)
        if self.running[address] >= self.per_client:
            raise QuotaExceeded(
                f"at most {self.per_client} heavy requests (filters, large pages, 311 measures) at once per client; "
                "wait for one to finish",
                retry_after_s=2,
                limit="heavy_per_client",
            )
        return address

    @contextlib.asynccontextmanager
    async def hold(self, scope: Scope) -> AsyncIterator[None]:
        address = self.check(scope)
        self.running[address] += 1
        try:
            yield
        finally:
            self.running[address] -= 1
            if self.running[address] <= 0:
                del self.running[address]


class RateLimitMiddleware:
    """429 with `Retry-After` for a client address over any of the configured rates (e.g. `100/second;3000/minute`)."""

    def __init__(self, app: ASGIApp, *, rates: str, trusted: Sequence[Network], loopback: bool) -> None:
        self.app = app
        self.items: list[RateLimitItem] = parse_many(rates) if rates.strip() else []
        self.limiter = SlidingWindowCounterRateLimiter(MemoryStorage())
        self.trusted = tuple(trusted)
        self.loopback = loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.items:
            await self.app(scope, receive, send)
            return
        address = client_address(scope, self.trusted)
        if self.loopback or not is_local(address):
            for item in self.items:
                if not self.limiter.hit(item, address):
                    reset = self.limiter.get_window_stats(item, address).reset_time
                    wait = max(1, math.ceil(reset - time.time()))
                    await self._refusal(scope.get("path", ""), item, wait)(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    @staticmethod
    def _refusal(path: str, item: RateLimitItem, wait_s: int) -> Response:
        """The 429: GeoReport's error body under /open311 (its clients read no other), the server's JSON elsewhere."""
        description = f"more than {item} requests from this address; slow down"
        if georeport.for_path(path):
            return georeport.path_error(path, 429, description, retry_after_s=wait_s)
        return error_response(429, "rate_limited", description, retry_after_s=wait_s, limit=f"rate {item}")
