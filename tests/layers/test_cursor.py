"""Near-me cursors: signed, bound to their search, refused when forged or replayed elsewhere."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from layers.errors import InvalidParameter
from layers.queries.cursor import CursorKey, CursorSigner, fingerprint
from layers.queries.nearby import NearbyQuery, search_fingerprint

AT = datetime(2026, 7, 15, 18, 0, tzinfo=UTC)


def test_cursors_are_signed_and_bound_to_their_query() -> None:
    signer = CursorSigner(b"k" * 32)
    q = NearbyQuery(-114.07, 51.05, None, (), False, AT, 10)
    bound_to = search_fingerprint(q, ["facilities"])
    key = CursorKey(123.456, "facilities", 42)
    cursor = signer.encode(key, bound_to)
    assert signer.decode(cursor, bound_to) == key
    body, _, mac = cursor.partition(".")
    forged_body = body[:-2] + ("AA" if body[-2:] != "AA" else "BB")
    elsewhere = search_fingerprint(NearbyQuery(-114.0, 51.05, None, (), False, AT, 10), ["facilities"])
    for bad, bound in [
        (f"{forged_body}.{mac}", bound_to),  # payload changed, signature kept
        (CursorSigner(b"x" * 32).encode(key, bound_to), bound_to),  # signed by someone else
        (cursor, elsewhere),  # a cursor of another search
        ("not a cursor", bound_to),
        ("", bound_to),
        ("!!!.???", bound_to),
    ]:
        with pytest.raises(InvalidParameter) as refused:
            signer.decode(bad, bound)
        assert refused.value.parameter == "cursor"


def test_a_cursor_never_carries_a_value_the_database_could_misread() -> None:
    signer = CursorSigner(b"k" * 32)
    for ident in (True, None, 1.5, [1], {"a": 1}):
        cursor = signer.encode(CursorKey(1.0, "facilities", ident), "bound")
        with pytest.raises(InvalidParameter):
            signer.decode(cursor, "bound")


def test_fingerprints_stay_the_same_so_next_links_outlive_a_new_version() -> None:
    # Next links handed out before an upgrade must still work after it (and between instances of two versions).
    near_me = [-114.07, 51.05, None, ["facilities"], [], False, "2026-07-15T18:00:00+00:00"]
    assert fingerprint(near_me) == "282cb2aec0b4fb080de592d12008b60b"
    assert fingerprint(["parcels", [("limit", "10"), ("f", "json")]]) == "6af2c415624448c8c285bc78ebcee739"
