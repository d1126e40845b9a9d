"""The abuse benchmark's clients (scripts/bench/abuselib.py) against a server process on the test City, with 16
connections of normal map traffic beside them: the normal traffic gets no error, the server's memory stays bounded,
and the abusers meet the limits meant for them. Speed is the benchmark's business (scripts/bench/abuse): nothing
here is timed.
"""

from __future__ import annotations

import asyncio
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.support.cluster import make_shared_dir
from tests.support.servers import ServerProcess

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "bench"))
from abuselib import Abuse, Abusers, normal_paths, peak_rss_mb  # noqa: E402

CONNECTIONS = 16
SECONDS = 15.0
MEMORY_GROWTH_LIMIT_MB = 400


async def _normal_traffic(base_url: str, seconds: float) -> Counter[int]:
    """16 connections asking for tiles, pages of items and near-me answers; the statuses they got."""
    paths = normal_paths(random.Random(11))
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds

    async def connection(offset: int) -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
            i = offset
            while time.monotonic() < deadline:
                try:
                    statuses[(await http.get(paths[i % len(paths)])).status_code] += 1
                except httpx.HTTPError:
                    statuses[0] += 1
                i += CONNECTIONS

    await asyncio.gather(*(connection(n) for n in range(CONNECTIONS)))
    return statuses


def _with_memory(pid: int, seconds: float, base_url: str) -> tuple[Counter[int], float]:
    stop = threading.Event()
    samples: list[float] = []
    sampler = threading.Thread(target=lambda: samples.extend(peak_rss_mb(pid, stop)), daemon=True)
    sampler.start()
    try:
        statuses = asyncio.run(_normal_traffic(base_url, seconds))
    finally:
        stop.set()
        sampler.join(5)
    return statuses, max(samples)


def test_normal_traffic_gets_no_error_while_abusers_try_to_take_the_server_down(
    database_url: str, demo_city: dict[str, str]
) -> None:
    with ServerProcess(database_url, make_shared_dir("geoserver-abuse-app-")) as server:
        alone, rss_alone = _with_memory(server.process.pid, 5, server.url)
        assert alone and set(alone) <= {200, 204}, alone
        abusers = Abusers(server.url, Abuse()).start()
        try:
            time.sleep(3)  # the abuse takes hold: downloads asked for, connections held, filters running
            abused, rss_abused = _with_memory(server.process.pid, SECONDS, server.url)
        finally:
            outcomes = abusers.stop()
        print(f"\nnormal traffic alone: {dict(alone)}; under abuse: {dict(abused)}")
        print(f"server RSS: {rss_alone:.0f} MB alone, {rss_abused:.0f} MB under abuse; abusers got {dict(outcomes)}")
        assert set(abused) <= {200, 204}, f"normal traffic got errors under abuse: {abused}"
        assert sum(abused.values()) > 0, "no normal request was answered under abuse"
        assert rss_abused - rss_alone < MEMORY_GROWTH_LIMIT_MB
        # The abusers met what was meant for them: files served, heavy work limited per address.
        assert outcomes["full download: 200"] > 0 and outcomes["aborted download: hung up"] > 0
        assert outcomes["heavy filter: 429"] > 0, outcomes
        assert httpx.get(f"{server.url}/ready").status_code == 200
