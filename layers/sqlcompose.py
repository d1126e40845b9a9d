"""The one way the project writes SQL: `psycopg.sql` composition, `Slot`s where values go, `render` to bytes.

Every statement is composed from `sql.SQL`, `sql.Identifier` (names, resolved against the catalogue first) and
`sql.Literal` (constants the server itself chose), never from f-strings or `%` formatting. Values always travel
separately, bound by the driver.

The `%` pitfall, documented once: psycopg reads every `%` of a statement that runs with parameters as the start of a
placeholder, even inside a quoted name or literal, so a field called `50%` would break the query (or worse, shift
the parameters). So no composed text reaches `execute` as it is: a value's place is marked with a `Slot`, and
`render` doubles every `%` of the composed statement, then writes the real `%(name)s` placeholders where the slots
are. Slots are delimited by NUL bytes, which never appear in a name or literal (the catalogue refuses them).
A statement without slots is rendered as it is, and runs without parameters (psycopg then sends it verbatim):
run a rendered statement with its values exactly when it has slots (`Binder.params_for` tells).

Two ways to fill slots, one rendering:
- statements composed once (per catalogue load) and run many times name their slots: `Slot("xmin")`, then
  `execute(render(statement), {"xmin": ...})`;
- statements composed per request take their values as they are built: `bind = Binder()`, `bind(value)` returns a
  slot, and `execute(render(statement), bind.params)`.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from psycopg import sql

_SLOT = re.compile(rb"\x00([A-Za-z_][A-Za-z0-9_]*)\x00")


class Slot(sql.Composable):
    """Where a bound value goes: a named placeholder that survives `%` in names and literals."""

    def __init__(self, name: str) -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"a slot name must be an identifier, not {name!r}")
        super().__init__(name)

    def as_bytes(self, context: Any = None) -> bytes:
        return b"\x00" + str(self._obj).encode() + b"\x00"


def render(statement: sql.Composable) -> bytes:
    """The statement as bytes for `execute(text, {slot name: value})`: every `%` doubled, slots as placeholders.

    Rendered without a connection, so a statement can be rendered once and reused on any connection (the server
    and every cluster it talks to use UTF-8)."""
    text = statement.as_bytes(None)
    if not _SLOT.search(text):
        return text
    return _SLOT.sub(lambda m: b"%(" + m.group(1) + b")s", text.replace(b"%", b"%%"))


class Binder:
    """Collects the values of a statement composed per request; each call returns the slot of one value."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def __call__(self, value: Any) -> Slot:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return Slot(name)

    def params_for(self, text: bytes) -> dict[str, Any] | None:
        """The values to run `text` with: None when it has no placeholder (it is then sent verbatim)."""
        return self.params if b"%(" in text else None


class StatementCache:
    """Rendered statements by what shapes them (layer versions, options), the least recently used dropped first:
    a statement is composed and rendered once per shape, and requests only bind values."""

    def __init__(self, size: int = 512) -> None:
        self._texts: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = size

    def get(self, key: Hashable, build: Callable[[], bytes]) -> bytes:
        """The statement for `key`, built (and kept) on first use."""
        text = self._texts.get(key)
        if text is None:
            text = build()
            self._texts[key] = text
            if len(self._texts) > self._size:
                self._texts.popitem(last=False)
        else:
            self._texts.move_to_end(key)
        return text

    def __len__(self) -> int:
        return len(self._texts)

    def texts(self) -> list[bytes]:
        """Every statement kept, least recently used first."""
        return list(self._texts.values())
