"""The `geoserver` command line: serve, migrate, load, demo, seed, layers, cluster."""

from __future__ import annotations

import logging
import sys

from geoserver.cli import catalogue, cluster, data, publish, serve  # noqa: F401, I001 - each registers its commands, in this order
from geoserver.cli.common import app


def main() -> None:
    """Entry point of the `geoserver` command."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
