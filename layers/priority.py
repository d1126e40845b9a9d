"""Heavy work at low CPU priority inside PostgreSQL too, when the database runs on this machine.

A backend's CPU priority is its operating-system process priority. When the database is reached through a Unix socket
or loopback, and the backend's process here is a PostgreSQL one, heavy connections (filters, download builds) are
niced so that map requests' queries come first on a busy machine. Anywhere else (a remote database, no permission)
nothing changes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection

log = logging.getLogger("layers.priority")
NICENESS = 10
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def _is_postgres(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() in ("postgres", "postmaster")
    except OSError:
        return False


async def lower_backend_priority(conn: AsyncConnection[Any]) -> bool:
    """Nice this connection's backend process; True when it was done."""
    host = conn.info.host or ""
    if not (host.startswith("/") or host in _LOOPBACK):
        return False
    cursor = await conn.execute("SELECT pg_backend_pid()")
    row = await cursor.fetchone()
    pid = int(row[0]) if row else 0
    if not pid or not _is_postgres(pid):
        return False  # another machine's (or container's) process numbers: leave everything alone
    try:
        os.setpriority(os.PRIO_PROCESS, pid, NICENESS)
    except OSError as exc:
        log.debug("could not lower the priority of backend %d: %s", pid, exc)
        return False
    return True
