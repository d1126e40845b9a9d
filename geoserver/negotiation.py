"""Reading the weighted lists of Accept, Accept-Language and Accept-Encoding headers."""

from __future__ import annotations

MAX_ITEMS = 30  # a longer header is cut here: nobody needs more, and parsing stays bounded


def weighted(header: str | None) -> list[tuple[str, float]]:
    """The header's values, lower-cased, each with its q weight (1 when absent, 0 when malformed), in order."""
    if not header:
        return []
    values = []
    for item in header.split(",")[:MAX_ITEMS]:
        value, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, text = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(text)
                except ValueError:
                    q = 0.0
        values.append((value.strip().lower(), q))
    return values


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header takes gzip (by name or `*`, with a weight above zero)."""
    return any(coding in ("gzip", "*") and q > 0 for coding, q in weighted(accept_encoding))


def none_match(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names this entity tag (weak or strong, in a list, or `*`): answer 304."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags
