"""Logging for `geoserver serve`: uvicorn's configuration with every query string redacted.

Near-me requests carry the caller's position in the query string (`/nearby?lon=..&lat=..`, `/here`, `near=` on
items). uvicorn's access logger does not propagate to the root logger, so a filter on the root would never see its
records: the filter sits on the access logger itself (so any handler added later sees redacted records) and on
every handler of this configuration (so records of any other logger are covered too).
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from uvicorn.config import LOGGING_CONFIG

REDACTED = "?[redacted]"
ACCESS_LOGGER = "uvicorn.access"
# A query string after a path, in any other log message: "/nearby?lon=1&lat=2" -> "/nearby?[redacted]".
_URL_QUERY = re.compile(r"(/[^\s?\"'<>]*)\?[^\s\"'<>]*")


def strip_query(path: str) -> str:
    """The path without its query string (marked as redacted when there was one)."""
    head, sep, _ = path.partition("?")
    return head + REDACTED if sep else head


class RedactQueryStrings(logging.Filter):
    """Remove query strings from uvicorn access records and from URLs in any other record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact in place and always let the record through."""
        args = record.args
        if record.name == ACCESS_LOGGER and isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            # uvicorn logs '%s - "%s %s HTTP/%s" %d' with (client, method, path with query, version, status).
            record.args = (*args[:2], strip_query(args[2]), *args[3:])
            return True
        message = record.getMessage()
        if "?" in message:
            redacted = _URL_QUERY.sub(lambda m: m[1] + REDACTED, message)
            if redacted != message:
                record.msg, record.args = redacted, None
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration plus query-string redaction on every logger and handler it sets up."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact_query": {"()": RedactQueryStrings}}
    config["formatters"]["plain"] = {"format": "%(levelname)s %(name)s: %(message)s"}
    # The root logger keeps its level (the command line sets it); its records go through a redacting handler too.
    config["handlers"]["root"] = {"formatter": "plain", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    for handler in config["handlers"].values():
        handler["filters"] = [*handler.get("filters", []), "redact_query"]
    config["loggers"][ACCESS_LOGGER]["filters"] = ["redact_query"]
    config["root"] = {"handlers": ["root"]}
    # The server's own progress lines (an upload's stages, the catalogue reloads) are INFO: shown like uvicorn's.
    config["loggers"]["geoserver"] = {"level": "INFO"}
    return config
