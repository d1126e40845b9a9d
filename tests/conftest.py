"""Shared fixtures: a real PostGIS cluster started by the tests themselves, never a mock."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from geoserver.cluster import EmbeddedCluster
from layers.catalogue.migrate import upgrade
from tests.support.cluster import make_shared_dir, running_cluster
from tests.support.layers import DEMO_NOW
from tests.support.servers import LiveServer


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[EmbeddedCluster]:
    """A private PostgreSQL + PostGIS cluster for the whole test session."""
    with running_cluster("geoserver-test-") as cluster:
        yield cluster


@pytest.fixture(scope="session")
def database_url(pg_cluster: EmbeddedCluster) -> str:
    """The migrated test database."""
    url = pg_cluster.url()
    upgrade(url)
    return url


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the test database."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A skipped test is a failed promise here: `scripts/test` must prove everything, so skips (and expected
    failures, which hide a broken test as well) fail the run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = sum(len(reporter.stats.get(kind, [])) for kind in ("skipped", "xfailed")) if reporter is not None else 0
    if skipped and exitstatus == 0 and not os.environ.get("GEOSERVER_ALLOW_SKIPS"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter is not None:
            reporter.write_line(f"{skipped} test(s) skipped: failing the run (set GEOSERVER_ALLOW_SKIPS=1 to allow)")


@pytest.fixture(scope="session")
def demo_city(database_url: str) -> dict[str, str]:
    """The demo City (scale 1, default seed, now = DEMO_NOW) in the test database; returns {layer: category}."""
    from datetime import datetime

    from layers import demo
    from layers.catalogue.manifest import city_manifest_dir, load_city_manifests
    from layers.ingest.publish import publish

    out = make_shared_dir("geoserver-demo-")
    try:
        demo.generate(out / "demo", now=datetime.fromisoformat(DEMO_NOW))
        manifests = load_city_manifests()
        for manifest in manifests:
            publish(database_url, manifest, manifest_dir=city_manifest_dir(), data_dir=out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {m.id: m.category for m in manifests}


@pytest.fixture(scope="session")
def app_data_dir() -> Iterator[Path]:
    """The data directory of the test apps (uploads, keys): one per test session, removed afterwards."""
    path = make_shared_dir("geoserver-test-app-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def client(database_url: str, demo_city: dict[str, str], app_data_dir: Path) -> Iterator[TestClient]:
    """An HTTP client for an app on the test database, once the demo City is in its catalogue."""
    from geoserver.app import create_app
    from geoserver.settings import Settings

    settings = Settings(data_dir=app_data_dir, connect_timeout_s=2)
    with TestClient(create_app(settings, database_url)) as test_client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = test_client.get("/ready")
            if ready.status_code == 200 and ready.json()["layers"] >= len(demo_city):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the app did not load the demo City in time")
        yield test_client


@pytest.fixture(scope="module")
def live_server(database_url: str, demo_city: dict[str, str], app_data_dir: Path) -> Iterator[LiveServer]:
    """The app on the test database with the demo City, served over real HTTP."""
    from geoserver.app import create_app
    from geoserver.settings import Settings

    settings = Settings(data_dir=app_data_dir, connect_timeout_s=2)
    with LiveServer(create_app(settings, database_url)) as server:
        yield server
