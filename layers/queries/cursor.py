"""Near-me paging cursors: where a page ended, signed (HMAC-SHA256) so a client can neither forge nor alter one.

A cursor is bound to the search it came from (its fingerprint: every parameter but the limit and the cursor), so a
next link replayed against another search is refused rather than misread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from layers.errors import InvalidParameter

MAC_BYTES = 16


def _bad() -> InvalidParameter:
    return InvalidParameter("invalid cursor: ask for the first page again", parameter="cursor")


@dataclass(frozen=True)
class CursorKey:
    """Where a page ended: the last feature's distance, layer and id."""

    distance_m: float
    layer: str
    id: Any


def fingerprint(parts: Sequence[Any]) -> str:
    """What a cursor is bound to: a digest of the search's parameters (JSON-encodable values)."""
    return hashlib.sha256(json.dumps(list(parts)).encode()).hexdigest()[:32]


class CursorSigner:
    """Signs and checks cursors with one secret key (the same on every worker and machine behind one address)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def encode(self, key: CursorKey, bound_to: str) -> str:
        """An opaque, signed cursor for the page after `key`."""
        return self.encode_values([key.distance_m, key.layer, key.id], bound_to)

    def decode(self, cursor: str, bound_to: str) -> CursorKey:
        """The key inside a cursor this server signed for the same search; 400 on anything else."""
        values = self.decode_values(cursor, bound_to, 3)
        distance_m, layer, ident = values
        if not (_finite(distance_m) and isinstance(layer, str) and valid_id(ident)):
            raise _bad()
        return CursorKey(float(distance_m), layer, ident)

    def encode_values(self, values: list[Any], bound_to: str) -> str:
        """An opaque cursor holding JSON values, signed and bound to `bound_to`."""
        payload = json.dumps([*values, bound_to], separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def decode_values(self, cursor: str, bound_to: str, count: int) -> list[Any]:
        """The `count` values of a cursor this server signed for the same `bound_to`; 400 on anything else."""
        try:
            body, _, mac = cursor.partition(".")
            payload = _unb64(body)
            if not hmac.compare_digest(self._mac(payload), _unb64(mac)):
                raise _bad()
            values = json.loads(payload)
        except (ValueError, TypeError, binascii.Error):
            raise _bad() from None
        # Only this server signs cursors, but a leaked key must still not make a bad value reach the database.
        if not isinstance(values, list) or len(values) != count + 1 or values[-1] != bound_to:
            raise _bad()
        return list(values[:-1])

    def _mac(self, payload: bytes) -> bytes:
        return hmac.digest(self._secret, payload, "sha256")[:MAC_BYTES]  # one C call, the same bytes as hmac.new


def valid_id(value: object) -> bool:
    """An id a cursor may carry: an integer or a string (never a boolean, a float or a structure)."""
    return isinstance(value, int | str) and not isinstance(value, bool)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
