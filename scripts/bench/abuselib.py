"""The abusive clients of the abuse benchmark (and of the test built on it), and the normal traffic beside them.

Abusers, each a loop until stopped, all on loopback:
- aborted downloads: ask for the whole layer as a GeoPackage, hang up after 0.2 s, ask again;
- slow readers: ask for the whole layer as GeoJSON with a tiny receive window, then read nothing;
- full downloads: fetch the whole GeoPackage, again and again;
- heavy filters: an anonymous CQL2 filter of 366 case-insensitive LIKE terms over the layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

FILTER_TERMS = 366
ABORT_AFTER_S = 0.2


@dataclass(frozen=True)
class Abuse:
    """How many of each abuser run at once."""

    aborted: int = 30
    slow_readers: int = 20
    full_downloads: int = 20
    heavy_filters: int = 10
    layer: str = "service_requests"
    text_field: str = "request_id"


def heavy_filter(field_name: str, terms: int = FILTER_TERMS) -> str:
    """A CQL2 text filter of `terms` case-insensitive substring matches, OR-ed."""
    rng = random.Random(terms)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(6)) for _ in range(terms)]
    return " OR ".join(f"CASEI({field_name}) LIKE CASEI('%{word}%')" for word in words)


@dataclass
class Outcomes:
    """What the abusers got back, by abuser and status (thread-safe enough: one event loop writes it)."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, who: str, what: object) -> None:
        self.counts[f"{who}: {what}"] += 1


class Abusers:
    """Runs the abusers in a thread of their own (an asyncio loop) until `stop()`."""

    def __init__(self, base_url: str, abuse: Abuse) -> None:
        self.base_url = base_url
        self.abuse = abuse
        self.host, self.port = "127.0.0.1", int(base_url.rsplit(":", 1)[1])
        self.outcomes = Outcomes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> Abusers:
        self._thread.start()
        return self

    def stop(self) -> Counter[str]:
        self._stop.set()
        self._thread.join(60)
        return self.outcomes.counts

    async def _main(self) -> None:
        a = self.abuse
        tasks = [self._aborted() for _ in range(a.aborted)]
        tasks += [self._slow_reader() for _ in range(a.slow_readers)]
        tasks += [self._full_download() for _ in range(a.full_downloads)]
        tasks += [self._heavy_filter() for _ in range(a.heavy_filters)]
        await asyncio.gather(*tasks)

    def _path(self, suffix: str) -> str:
        return f"/collections/{quote(self.abuse.layer, safe='')}/{suffix}"

    def _request_bytes(self, path: str) -> bytes:
        return f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nConnection: close\r\n\r\n".encode()

    async def _aborted(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.write(self._request_bytes(self._path("download.gpkg")))
                await asyncio.sleep(ABORT_AFTER_S)
                writer.transport.abort()
                self.outcomes.add("aborted download", "hung up")
            await asyncio.sleep(0.05)

    async def _slow_reader(self) -> None:
        while not self._stop.is_set():
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            try:
                loop = asyncio.get_running_loop()
                await loop.sock_connect(sock, (self.host, self.port))
                await loop.sock_sendall(sock, self._request_bytes(self._path("download.geojson")))
                started = time.monotonic()
                while not self._stop.is_set() and _open(sock):
                    await asyncio.sleep(0.5)  # read nothing: the server must give up on us
                self.outcomes.add("slow reader", "dropped by the server" if not _open(sock) else "still held")
                if not self._stop.is_set():
                    self.outcomes.add("slow reader", f"held {time.monotonic() - started:.0f} s")
            except OSError as exc:
                self.outcomes.add("slow reader", type(exc).__name__)
            finally:
                sock.close()

    async def _full_download(self) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=600) as http:
            while not self._stop.is_set():
                try:
                    async with http.stream("GET", self._path("download.gpkg")) as response:
                        size = 0
                        async for chunk in response.aiter_bytes(1 << 20):
                            size += len(chunk)
                            if self._stop.is_set():
                                break
                        self.outcomes.add("full download", response.status_code)
                except httpx.HTTPError as exc:
                    self.outcomes.add("full download", type(exc).__name__)
                    await asyncio.sleep(0.5)

    async def _heavy_filter(self) -> None:
        text = heavy_filter(self.abuse.text_field)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=120) as http:
            while not self._stop.is_set():
                try:
                    response = await http.get(self._path("items"), params={"filter": text, "limit": 10})
                    self.outcomes.add("heavy filter", response.status_code)
                    if response.status_code in (429, 503):
                        await asyncio.sleep(0.2)  # a polite client would honour Retry-After; an abuser barely waits
                except httpx.HTTPError as exc:
                    self.outcomes.add("heavy filter", type(exc).__name__)


def _open(sock: socket.socket) -> bool:
    """Whether the server still keeps the connection (a peek that does not consume what it sent)."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def normal_paths(rng: random.Random, count: int = 600) -> list[str]:
    """Tiles, pages of items and near-me questions around Calgary, a third of each."""
    paths = []
    for i in range(count):
        lon, lat = rng.uniform(-114.25, -113.95), rng.uniform(50.9, 51.15)
        kind = i % 3
        if kind == 0:
            z = rng.choice((12, 13, 14, 15))
            n = 2**z
            x = int((lon + 180) / 360 * n)
            y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
            layers = rng.choice(("service_requests", "facilities,events", "roads", "wards,communities"))
            paths.append(f"/tiles/{layers}/{z}/{x}/{y}.mvt")
        elif kind == 1:
            bbox = f"{lon:.4f},{lat:.4f},{lon + 0.01:.4f},{lat + 0.007:.4f}"
            layer = rng.choice(("service_requests", "facilities", "streetlights"))
            paths.append(f"/collections/{layer}/items?limit=10&bbox={bbox}")
        else:
            paths.append(f"/nearby?lon={lon:.5f}&lat={lat:.5f}&limit=10")
    return paths


def peak_rss_mb(pid: int, stop: threading.Event, every_s: float = 0.25) -> list[float]:
    """Sample a process's resident memory (MB) until `stop`; returns the samples (run it in a thread)."""
    samples: list[float] = []
    status = Path(f"/proc/{pid}/status")
    while not stop.is_set():
        with contextlib.suppress(OSError):
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    samples.append(int(line.split()[1]) / 1024)
        stop.wait(every_s)
    return samples


def children_of(pid: int) -> list[int]:
    """The process and its direct children (uvicorn's workers)."""
    found = [pid]
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
            found += [int(c) for c in children]
    return found
