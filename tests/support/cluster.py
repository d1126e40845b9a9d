"""Scratch PostgreSQL clusters for tests, and keeping child processes from outliving the test run."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

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
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def die_with_parent() -> None:
    """For subprocess preexec_fn: the child gets SIGTERM if the test run dies, so no server outlives it."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
