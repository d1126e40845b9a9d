"""The `geoserver` command line: serve, migrate, load, demo, seed, layers, groups, tokens, open311, export, cluster."""

from __future__ import annotations

import logging
import sys

# Each module registers its commands; `--help` lists them in this order.
# isort: off
from geoserver.cli import serve, data, publish, catalogue, access, open311, export, cluster  # noqa: F401

# isort: on
from geoserver.cli.common import app


def main() -> None:
    """Entry point of the `geoserver` command."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
