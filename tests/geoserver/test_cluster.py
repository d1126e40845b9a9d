"""The embedded cluster: first start, reuse, and recovery after a crash."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from geoserver.cluster import EmbeddedCluster
from tests.support.cluster import make_shared_dir


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A data directory of its own, removed afterwards."""
    root = make_shared_dir("geoserver-cluster-")
    try:
        yield root / "data"
    finally:
        cluster = EmbeddedCluster(root / "data")
        if cluster.initialised():
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def _wait_dead(pid: int) -> None:
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} did not die")


def test_a_second_user_reuses_the_running_cluster(scratch: Path) -> None:
    first = EmbeddedCluster(scratch)
    url = first.ensure_started()
    second = EmbeddedCluster(scratch)
    assert second.ensure_started() == url
    assert first.started_here and not second.started_here
    with psycopg.connect(url) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        assert conn.execute("SELECT PostGIS_Version()").fetchone()[0].startswith("3")  # type: ignore[index]
    first.stop()
    assert second.running_port() is None


def test_a_cluster_killed_by_a_crash_is_recovered_with_its_data(scratch: Path) -> None:
    cluster = EmbeddedCluster(scratch)
    url = cluster.ensure_started()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE survivor (x int)")
        conn.execute("INSERT INTO survivor VALUES (42)")
    pid = int((cluster.pgdata / "postmaster.pid").read_text().splitlines()[0])
    os.kill(pid, signal.SIGKILL)
    _wait_dead(pid)
    assert (cluster.pgdata / "postmaster.pid").exists()  # left behind, as after a real crash
    recovered = EmbeddedCluster(scratch)
    url = recovered.ensure_started()
    assert recovered.started_here
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT x FROM survivor").fetchone() == (42,)


def test_a_stale_pid_file_naming_a_live_stranger_is_recovered(scratch: Path) -> None:
    cluster = EmbeddedCluster(scratch)
    cluster.ensure_started()
    cluster.stop()
    # After a reboot, the PID in a stale postmaster.pid can belong to some other live process (here: us).
    pid_file = cluster.pgdata / "postmaster.pid"
    pid_file.write_text(f"{os.getpid()}\n{cluster.pgdata}\n0\n5432\n{cluster.socket_dir}\n127.0.0.1\n0 0\nready\n")
    owner = cluster._owner()
    if owner is not None:
        os.chown(pid_file, owner.pw_uid, owner.pw_gid)
    url = EmbeddedCluster(scratch).ensure_started()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_port_is_kept_across_restarts(scratch: Path) -> None:
    cluster = EmbeddedCluster(scratch)
    first = cluster.ensure_started()
    cluster.stop()
    assert cluster.ensure_started() == first
