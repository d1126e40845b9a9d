"""PostgreSQL stops and starts again under load: the server answers 503 at once meanwhile, and recovers by itself.

The server runs as its own process (`geoserver serve`, as deployed) on a cluster of this test's own, so stopping
the database touches nothing else. Eight clients keep asking for pages of items (never cached) and near-me answers.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from geoserver.cluster import EmbeddedCluster
from layers.catalogue.migrate import upgrade
from layers.ingest.in_place import publish_table
from tests.support.cluster import make_shared_dir, running_cluster
from tests.support.layers import manifest
from tests.support.servers import ServerProcess

CLIENTS = 8
OUTAGE_S = 2.0
RECOVERY_GOAL_S = 2.0


@dataclass(frozen=True)
class Answer:
    sent: float
    seconds: float
    status: int
    retry_after: str | None


@pytest.fixture(scope="module")
def city() -> Iterator[tuple[EmbeddedCluster, str]]:
    with running_cluster("geoserver-outage-") as cluster:
        url = cluster.url()
        upgrade(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE public.stops AS SELECT g AS id, 'stop ' || g AS name, "
                "ST_SetSRID(ST_MakePoint(-114.2 + (g % 100) / 250.0, 50.9 + (g / 100) / 250.0), 4326)"
                "::geometry(Point, 4326) AS geom FROM generate_series(1, 5000) AS g"
            )
        publish_table(url, manifest("stops", ["id", "name"], id_field="id", source={"table": "public.stops"}))
        yield cluster, url


@pytest.fixture(scope="module")
def server(city: tuple[EmbeddedCluster, str]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    with ServerProcess(city[1], make_shared_dir("geoserver-outage-app-")) as process:
        yield process.url, process.process


def _load(base: str, stop: threading.Event, answers: list[Answer], seed: int) -> None:
    with httpx.Client(base_url=base, timeout=30) as http:
        n = seed
        while not stop.is_set():
            n += CLIENTS
            path = (
                f"/collections/stops/items?limit=10&offset={n % 4000}"
                if n % 2
                else f"/nearby?lon={-114.1 + (n % 50) / 1000}&lat=51.0&layers=stops&limit=5"
            )
            sent = time.monotonic()
            try:
                response = http.get(path)
                status, retry = response.status_code, response.headers.get("retry-after")
            except httpx.TransportError:
                status, retry = 0, None
            answers.append(Answer(sent, time.monotonic() - sent, status, retry))


def test_a_database_outage_answers_503_fast_and_heals_without_a_restart(
    server: tuple[str, subprocess.Popen[bytes]], city: tuple[EmbeddedCluster, str]
) -> None:
    cluster = city[0]
    base, process = server
    answers: list[Answer] = []
    stop = threading.Event()
    threads = [threading.Thread(target=_load, args=(base, stop, answers, i), daemon=True) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        stopping = time.monotonic()
        cluster.stop()
        down = time.monotonic()
        time.sleep(OUTAGE_S)
        restarting = time.monotonic()
        cluster.ensure_started()
        up = time.monotonic()
        time.sleep(RECOVERY_GOAL_S + 1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    before = [a for a in answers if a.sent + a.seconds < stopping]
    during = [a for a in answers if down + 0.2 < a.sent and a.sent + a.seconds < restarting]
    after = [a for a in answers if a.sent > up + RECOVERY_GOAL_S]
    assert before and {a.status for a in before} == {200}
    assert len(during) > 50, "too few requests during the outage to judge"
    assert {a.status for a in during} == {503}
    assert all(a.retry_after for a in during)
    times = sorted(a.seconds for a in during)
    median, p99, slowest = times[len(times) // 2], times[int(len(times) * 0.99)], times[-1]
    figures = {"median": median, "p99": p99, "max": slowest}
    ms = ", ".join(f"{name} {value * 1000:.1f} ms" for name, value in figures.items())
    print(f"\noutage: {len(during)} answers; {ms}")
    assert median < 0.1 and slowest < 1.0, f"503s took {median:.3f} s (median), {slowest:.3f} s (slowest)"
    first_ok = min((a.sent + a.seconds for a in answers if a.sent > restarting and a.status == 200), default=None)
    assert first_ok is not None and first_ok - up < RECOVERY_GOAL_S, "requests did not succeed again in time"
    assert after and {a.status for a in after} == {200}, sorted({a.status for a in after})
    assert process.poll() is None and httpx.get(f"{base}/ready").status_code == 200  # the same process, healed
