"""Scratch PostgreSQL clusters for tests, and keeping child processes from outliving the test run."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

from geoserver.cluster import EmbeddedCluster


def make_shared_dir(prefix: str) -> Path:
    """A temporary folder the `postgres` user can traverse (pytest's own tmp folders are private to root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(path, 0o755)
    return path


@contextlib.contextmanager
def running_cluster(prefix: str) -> Iterator[EmbeddedCluster]:
    """A started cluster in a fresh data directory, stopped and removed afterwards."""
    root = make_shared_dir(prefix)
    cluster = EmbeddedCluster(root / "data")
    cluster.ensure_started()
    # The postmaster reports a backend that died at level LOG, below the cluster's `log_min_messages` (warning):
    # without this, `report_crashes` would find nothing to report.
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET log_min_messages = 'log'")
        conn.execute("SELECT pg_reload_conf()")
    try:
        yield cluster
    finally:
        cluster.stop()
        report_crashes(root / "data" / "log")
        shutil.rmtree(root, ignore_errors=True)


CRASH_SIGNS = re.compile(
    r"terminated by signal|server process \(PID \d+\) exited with exit code|PANIC|terminating any other active"
    r"|Failed process was running"  # the statement the crashed backend ran
)
# Every fast shutdown logs this one, crash or not.
SHUTDOWN_SIGN = "logical replication launcher"


def report_crashes(log_dir: Path) -> None:
    """Before the cluster's folder goes: if a backend crashed during the run (the cluster then went through recovery,
    and tests that connected meanwhile failed far from the cause), print the server's own lines about it."""
    lines = [line for log in sorted(log_dir.glob("*")) for line in log.read_text(errors="replace").splitlines()
             if CRASH_SIGNS.search(line) and SHUTDOWN_SIGN not in line]  # fmt: skip
    if lines:
        print("PostgreSQL reported a crash during the test run:", *lines[-20:], sep="\n", file=sys.__stderr__)


def die_with_parent() -> None:
    """For subprocess preexec_fn: the child gets SIGTERM if the test run dies, so no server outlives it."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
