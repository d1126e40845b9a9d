"""An instance whose workers could open more connections than PostgreSQL allows says so when it starts, rather than
answering 503s under load far from the cause; and how many map connections a worker opens when not told."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from geoserver import database
from geoserver.app import create_app
from geoserver.settings import Settings
from tests.support.servers import until_ready


@pytest.mark.parametrize(("workers", "pool_max_size", "warned"), [(1, 10, False), (2, 100, True)])
def test_an_instance_that_could_exhaust_postgresql_warns_at_start(
    database_url: str,
    demo_city: dict[str, str],
    app_data_dir: Path,
    caplog: pytest.LogCaptureFixture,
    workers: int,
    pool_max_size: int,
    warned: bool,
) -> None:
    settings = Settings(data_dir=app_data_dir, connect_timeout_s=2, workers=workers, pool_max_size=pool_max_size)
    caplog.set_level(logging.WARNING, logger="geoserver.database")
    with TestClient(create_app(settings, database_url)) as client:
        until_ready(client)  # ready once the listener has connected and checked
    said = [r.getMessage() for r in caplog.records if "connections to PostgreSQL" in r.getMessage()]
    assert bool(said) == warned, said
    if warned:
        # The embedded test cluster allows 200 connections, 3 of them kept for superusers.
        assert (
            f"{workers} worker(s) may open {workers * database.connections_per_worker(settings)} connections" in said[0]
        )
        assert "which allows 197" in said[0] and "GEOSERVER_POOL_MAX_SIZE" in said[0]


@pytest.mark.parametrize(
    ("cores", "workers", "setting", "expected"),
    [(2, 1, None, 4), (2, 2, None, 2), (2, 4, None, 2), (8, 3, None, 6), (64, 1, None, 16), (2, 1, 10, 10)],
)
def test_the_map_pool_is_twice_the_cores_shared_among_the_workers_unless_set(
    monkeypatch: pytest.MonkeyPatch, app_data_dir: Path, cores: int, workers: int, setting: int | None, expected: int
) -> None:
    monkeypatch.setattr(database, "available_cores", lambda: cores)
    replica = "postgresql://nobody@127.0.0.1:2/replica"
    settings = Settings(data_dir=app_data_dir, workers=workers, pool_max_size=setting, read_database_urls=replica)
    built = database.Database.build(settings, "postgresql://nobody@127.0.0.1:1/none")  # built closed: no connection
    assert built.pools[database.Workload.INTERACTIVE].max_size == expected
    assert built.replicas is not None and [r.pool.max_size for r in built.replicas.members] == [expected]
    assert database.connections_per_worker(settings) == (
        expected + settings.heavy_pool_size + settings.writes_pool_size + 1
    )


def test_a_containers_cpu_limit_bounds_the_cores(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    limit = tmp_path / "cpu.max"
    monkeypatch.setattr(database, "CGROUP_CPU_MAX", limit)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))  # a cpuset of 8 cores
    assert database.available_cores() == 8  # no limit file: the cpuset alone
    limit.write_text("max 100000\n")
    assert database.available_cores() == 8
    limit.write_text("250000 100000\n")  # two and a half cores: three
    assert database.available_cores() == 3
    limit.write_text("50000 100000\n")  # half a core: one
    assert database.available_cores() == 1
