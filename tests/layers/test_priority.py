"""Heavy work's backends are niced when the database runs on this machine (the tests' cluster does)."""

from __future__ import annotations

import asyncio
import os

from psycopg import AsyncConnection

from layers.priority import NICENESS, lower_backend_priority


def test_a_local_backend_gets_a_lower_cpu_priority(database_url: str) -> None:
    async def run() -> tuple[bool, int, int]:
        async with await AsyncConnection.connect(database_url, autocommit=True) as conn:
            cursor = await conn.execute("SELECT pg_backend_pid()")
            row = await cursor.fetchone()
            assert row is not None
            before = os.getpriority(os.PRIO_PROCESS, row[0])
            done = await lower_backend_priority(conn)
            return done, before, os.getpriority(os.PRIO_PROCESS, row[0])

    done, before, after = asyncio.run(run())
    assert before == 0 and done and after == NICENESS
