"""What every command shares: the console, clean failures, the database, progress bars."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, NoReturn, TypeVar

import typer
from psycopg import AsyncConnection
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from geoserver.cluster import EmbeddedCluster
from geoserver.settings import Settings
from layers.errors import GeoServerError

app = typer.Typer(
    help="City location services server: catalogue, OGC APIs and vector tiles on PostGIS.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
T = TypeVar("T")


def fail(message: str) -> NoReturn:
    """Print an error and exit 1."""
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code=1)


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """Our errors end the command with their message, never a traceback."""
    try:
        yield
    except GeoServerError as exc:
        fail(exc.message)


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The database URL: GEOSERVER_DATABASE_URL, or the embedded cluster (started if needed, stopped if we did)."""
    if settings.database_url:
        yield settings.database_url
        return
    cluster = EmbeddedCluster(settings.data_dir)
    url = cluster.ensure_started()
    try:
        yield url
    finally:
        if cluster.started_here:
            cluster.stop()


def progress_bar() -> Progress:
    """A progress bar on stderr."""
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def run_on_database(work: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
    """Run `work` on one connection to the server's database, in a transaction, with clean failures."""

    async def main(url: str) -> T:
        async with await AsyncConnection.connect(url) as conn, conn.transaction():
            return await work(conn)

    settings = Settings()
    with errors(), database(settings) as url:
        from layers.catalogue.migrate import upgrade

        upgrade(url)
        return asyncio.run(main(url))
    raise AssertionError("unreachable")  # errors() exits on failure
