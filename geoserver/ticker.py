"""Waking the live-change subscribers of this process when the database says something changed."""

from __future__ import annotations

import asyncio
import contextlib


class Ticker:
    """Subscribers wait for the next tick (or a timeout); every change notice ticks, after the tile cache has
    dropped what the change touched, so a subscriber told of a change never reads a stale tile here."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def tick(self) -> None:
        """Wake everyone waiting now; later waiters wait for the next tick."""
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, timeout_s: float) -> bool:
        """True when a tick came within `timeout_s`, False on the timeout."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._event.wait()
                return True
        return False
