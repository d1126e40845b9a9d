"""`python -m geoserver` runs the command line."""

from geoserver.cli import main

main()
