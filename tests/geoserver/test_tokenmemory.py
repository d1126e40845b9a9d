"""The token memory behind feature edits: bounded in size (the least recently used go first) and in age."""

from __future__ import annotations

from geoserver.tokenmemory import token_memory
from layers.catalogue.visibility import Principal


def test_the_memory_forgets_the_least_recently_used_first() -> None:
    memory = token_memory(size=2)
    a, b, c = (Principal(subject=s) for s in "abc")
    memory[b"a"], memory[b"b"] = a, b
    assert memory.get(b"a") == a  # used: now the most recent
    memory[b"c"] = c
    assert len(memory) == 2 and memory.get(b"b") is None and memory.get(b"a") == a and memory.get(b"c") == c
    memory.pop(b"a", None)
    assert memory.get(b"a") is None and len(memory) == 1


def test_the_memory_forgets_what_it_learned_too_long_ago() -> None:
    now = [1000.0]
    memory = token_memory(max_age_s=300, clock=lambda: now[0])
    memory[b"d"] = Principal(subject="d")
    now[0] += 299
    assert memory.get(b"d") == Principal(subject="d")
    now[0] += 2
    assert memory.get(b"d") is None and len(memory) == 0
