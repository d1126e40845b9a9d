"""The token memory behind feature edits: bounded in size (the oldest go first) and in age."""

from __future__ import annotations

import pytest

import geoserver.tokenmemory
from geoserver.tokenmemory import TokenMemory
from layers.catalogue.visibility import Principal


def test_the_memory_forgets_the_least_recently_remembered_first() -> None:
    memory = TokenMemory(size=2)
    a, b, c = (Principal(subject=s) for s in "abc")
    memory.put(b"a", a)
    memory.put(b"b", b)
    memory.put(b"a", a)  # remembered again: now the newest
    memory.put(b"c", c)
    assert len(memory) == 2 and memory.get(b"b") is None and memory.get(b"a") == a and memory.get(b"c") == c
    memory.forget(b"a")
    assert memory.get(b"a") is None and len(memory) == 1


def test_the_memory_forgets_what_it_learned_too_long_ago(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(geoserver.tokenmemory.time, "monotonic", lambda: now[0])
    memory = TokenMemory(max_age_s=300)
    memory.put(b"d", Principal(subject="d"))
    now[0] += 299
    assert memory.get(b"d") == Principal(subject="d")
    now[0] += 2
    assert memory.get(b"d") is None and len(memory) == 0
