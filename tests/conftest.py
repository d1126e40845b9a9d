"""Shared fixtures: a real PostGIS cluster started by the tests themselves, never a mock."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from geoserver.cluster import EmbeddedCluster
from layers.migrate import upgrade


def make_shared_dir(prefix: str) -> Path:
    """A temporary folder the `postgres` user can traverse (pytest's own tmp folders are private to root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(path, 0o755)
    return path


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[EmbeddedCluster]:
    """A private PostgreSQL + PostGIS cluster for the whole test session."""
    root = make_shared_dir("geoserver-test-")
    cluster = EmbeddedCluster(root / "data")
    cluster.ensure_started()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


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
    """A skipped test is a failed promise here: `scripts/test` must prove everything, so skips fail the run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if skipped and exitstatus == 0 and not os.environ.get("GEOSERVER_ALLOW_SKIPS"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter is not None:
            reporter.write_line(f"{skipped} test(s) skipped: failing the run (set GEOSERVER_ALLOW_SKIPS=1 to allow)")
