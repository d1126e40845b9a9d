"""The `geoserver` command line run as an operator would, on the test database."""

from __future__ import annotations

import os
import subprocess
import sys


def geoserver(database_url: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `geoserver ARGS` with GEOSERVER_DATABASE_URL set; assert it succeeded (or, with ok=False, that it failed)."""
    env = {**os.environ, "GEOSERVER_DATABASE_URL": database_url}
    done = subprocess.run([sys.executable, "-m", "geoserver", *args], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert (done.returncode == 0) == ok, done.stderr[-2000:]
    return done
