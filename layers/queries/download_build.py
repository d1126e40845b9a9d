"""Building one download file in a process of its own, at low CPU priority: `python -m layers.queries.download_build`.

The server starts one per build (see `download_files`), so the build's Python work (rows into arrays, the GeoPackage
writer) never competes with the server's event loop for the interpreter, and its memory goes back when it exits.
The database URL comes in the environment (`GEOSERVER_DATABASE_URL`), never on the command line where `ps` shows it.

Exit status: 0 written; STALE the layer is gone or has another version than asked; UNREACHABLE the database could not
be reached; TOO_LONG the build ran past its statement timeout; anything else a failure (on stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path

import psycopg
from psycopg import AsyncConnection

from layers.catalogue.registry import Registry
from layers.priority import lower_backend_priority
from layers.queries import downloads

STALE, UNREACHABLE, TOO_LONG = 3, 4, 5
NICENESS = 10


async def build(database_url: str, layer_id: str, version: int, suffix: str, path: Path, timeout_ms: int) -> int:
    """Write the file; returns the exit status."""
    try:
        async with await AsyncConnection.connect(
            database_url,
            autocommit=True,
            application_name="geoserver-download",
            options=f"-c statement_timeout={timeout_ms} -c timezone=UTC",
        ) as conn:
            await lower_backend_priority(conn)
            registry = await Registry.load(conn)
            layer = next((one for one in registry.all_layers() if one.id == layer_id), None)
            if layer is None or layer.version != version:
                return STALE
            await downloads.write_file(conn, layer, suffix, path)
    except psycopg.errors.QueryCanceled:
        return TOO_LONG
    except psycopg.OperationalError:
        return UNREACHABLE
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build one whole-layer download file.")
    parser.add_argument("layer")
    parser.add_argument("version", type=int)
    parser.add_argument("suffix", choices=sorted(downloads.BY_SUFFIX))
    parser.add_argument("path", type=Path)
    parser.add_argument("--timeout-ms", type=int, default=900_000)
    args = parser.parse_args(argv)
    with contextlib.suppress(OSError):
        os.nice(NICENESS)  # the server's own requests come first
    url = os.environ.get("GEOSERVER_DATABASE_URL", "")
    return asyncio.run(build(url, args.layer, args.version, args.suffix, args.path, args.timeout_ms))


if __name__ == "__main__":
    sys.exit(main())
