"""The limits every part of the server shares: page sizes, radii, list lengths. One place, so they never drift."""

from __future__ import annotations

# Items pages (OGC API Features).
DEFAULT_LIMIT = 10
MAX_LIMIT = 10_000  # larger values are clamped to it, as the API document declares
# Deep offsets make the database walk and discard every row before the page; whole layers go through downloads.
MAX_OFFSET = 1_000_000
MAX_SORT_KEYS = 5

# Services near me.
MIN_RADIUS_M = 0.01  # a centimetre: smaller radii underflow the distance arithmetic
MAX_RADIUS_M = 50_000.0
NEARBY_DEFAULT_LIMIT = 10
NEARBY_MAX_LIMIT = 100  # above it a 400
MAX_NEARBY_LAYERS = 50
MAX_CATEGORIES = 20

# Search by name or address.
SEARCH_DEFAULT_LIMIT = 10
SEARCH_MAX_LIMIT = 50  # above it a 400
SEARCH_MIN_CHARS = 2
SEARCH_MAX_CHARS = 100
SEARCH_MAX_WORDS = 8
