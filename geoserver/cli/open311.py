"""`geoserver open311`: City staff answer 311 requests from the command line, and check the service catalogue."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from psycopg import AsyncConnection

from geoserver.cli.common import app, console, errors, run_on_database
from geoserver.settings import Settings
from layers.catalogue.registry import Registry
from layers.open311.catalogue import SERVICES_MANIFEST, ServiceCatalogue, load_catalogue
from layers.open311.places import requests_layer
from layers.open311.status import STATUSES, set_status

open311_app = typer.Typer(help="Open311 GeoReport v2: 311 service requests.", no_args_is_help=True)
app.add_typer(open311_app, name="open311")
ACTOR = "cli"


def _catalogue() -> ServiceCatalogue:
    with errors():
        return load_catalogue(Settings().open311_services or SERVICES_MANIFEST)
    raise AssertionError("unreachable")  # errors() exits on failure


@open311_app.command("services")
def services() -> None:
    """Check the service catalogue and list its services."""
    for s in _catalogue().services:
        demo = " (demo)" if s.demo else ""
        print(f"{s.code}\t{s.name.en}{demo}\t{s.type}\t{s.location}\t{s.department}")


@open311_app.command("status")
def status(
    request_id: Annotated[str, typer.Argument(help="The service_request_id, e.g. SR-00005001.")],
    new_status: Annotated[str, typer.Argument(metavar="STATUS", help=" or ".join(STATUSES))],
    notes: Annotated[str | None, typer.Option(help="status_notes: why, or what was done.")] = None,
) -> None:
    """Open or close a request, with notes; updated_datetime follows, and history and the audit log keep it."""
    catalogue = _catalogue()

    async def work(conn: AsyncConnection[Any]) -> int:
        where = requests_layer(catalogue, await Registry.load(conn))
        return await set_status(conn, where, request_id, new_status, notes, ACTOR)

    version = run_on_database(work)
    console.print(f"{request_id} is {new_status} (version {version} in its history).")
