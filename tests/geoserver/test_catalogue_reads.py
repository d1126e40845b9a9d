"""Overlapping reads of the catalogue: an older read that finishes last never replaces a newer registry.

A route reads the catalogue again after its own change while the listener may still be reading it for an earlier
notice; the older read (here made to finish last, holding an empty catalogue as the state it saw) must not win.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi.testclient import TestClient

from geoserver.state import AppState
from layers.catalogue.registry import Registry


def test_an_older_catalogue_read_finishing_last_is_not_used(
    client: TestClient, demo_city: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state: AppState = client.app.state.geoserver  # type: ignore[attr-defined]
    real_load = Registry.load
    held: list[bool] = []

    async def reads() -> list[str]:
        first_read = asyncio.Event()
        second_done = asyncio.Event()
        older: asyncio.Task[None] | None = None

        async def load(conn: Any) -> Registry:
            if asyncio.current_task() is older:  # the older read: it saw the catalogue as it was (empty here)...
                held.append(True)
                first_read.set()
                await second_done.wait()  # ...and finishes last
                return Registry()
            return await real_load(conn)  # any other read (the listener's too) reads the real catalogue

        monkeypatch.setattr(Registry, "load", staticmethod(load))
        older = asyncio.create_task(state.reload_registry())
        await first_read.wait()
        await state.reload_registry()  # started later, done first
        second_done.set()
        await older
        return [layer.id for layer in state.registry.all_layers()]

    assert client.portal is not None
    try:
        in_use = client.portal.call(reads)
    finally:
        monkeypatch.undo()
        client.portal.call(state.reload_registry)  # whatever happened, the other tests get the real catalogue
    assert held == [True]  # the older read was the one held back
    assert set(demo_city) <= set(in_use), "the older, emptier read replaced the newer registry"
