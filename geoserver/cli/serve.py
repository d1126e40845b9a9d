"""`geoserver serve`: start the cluster if needed, migrate, load the demo City on first start, serve."""

from __future__ import annotations

import os
import signal
from typing import Annotated, Any

import typer

from geoserver.cli.common import app, console, fail
from geoserver.cli.data import prepare
from geoserver.cluster import EmbeddedCluster
from geoserver.settings import Settings
from layers.errors import GeoServerError


class _StopRequested(Exception):
    """SIGTERM arrived: unwind like Ctrl-C so the cluster is stopped in order."""


def _terminate_as_exit(signum: int, frame: object) -> None:
    # uvicorn handles SIGTERM while it serves, then raises it again once it has shut down; before and after
    # that, this handler turns it into an orderly stop.
    raise _StopRequested()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [GEOSERVER_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [GEOSERVER_PORT].")] = None,
    demo: Annotated[bool, typer.Option(help="Load the demo City on first start [GEOSERVER_LOAD_DEMO].")] = True,
) -> None:
    """Serve the API: start the embedded cluster if needed, migrate, load the demo City on first start."""
    import uvicorn

    from geoserver.app import create_app
    from geoserver.httpserver import server_options
    from geoserver.logs import uvicorn_log_config
    from geoserver.workers import run_workers

    settings = Settings()
    updates = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = settings.model_copy(update=updates)
    signal.signal(signal.SIGTERM, _terminate_as_exit)
    cluster = None if settings.database_url else EmbeddedCluster(settings.data_dir)
    try:
        if cluster is not None:
            console.print(f"Starting the embedded PostgreSQL cluster in {cluster.pgdata}")
            url = cluster.ensure_started()
        else:
            url = settings.database_url or ""
        try:
            prepare(url, settings, load_demo=demo and settings.load_demo)
        except GeoServerError:
            raise
        except Exception as exc:  # noqa: BLE001 - a database that is down must not stop the server starting
            console.print(f"[yellow]warning:[/yellow] database not ready ({exc.__class__.__name__}); serving anyway")
        base = f"http://{settings.host}:{settings.port}"
        console.print(f"\n[bold]Serving the City on {base}[/bold]")
        for path, what in (("/", "landing page"), ("/health", "liveness"), ("/ready", "readiness")):
            console.print(f"  {base}{path:<10} {what}")
        console.print("Press Ctrl-C to stop.\n")
        options: dict[str, Any] = dict(
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            # Query strings (near-me coordinates) are redacted from every log line: geoserver/logs.py.
            log_config=uvicorn_log_config(),
            **server_options(),
        )
        if settings.workers > 1:
            # Each worker process builds its own app from the environment: hand them the database chosen here.
            os.environ["GEOSERVER_DATABASE_URL"] = url
            run_workers("geoserver.app:app_from_environment", settings.workers, options)  # a socket each
        else:
            uvicorn.Server(uvicorn.Config(create_app(settings, url), **options)).run()
    except GeoServerError as exc:
        fail(exc.message)
    except (KeyboardInterrupt, _StopRequested):
        pass  # a requested stop is a clean stop: exit 0 once the cluster is down
    finally:
        if cluster is not None and cluster.started_here:
            console.print("Stopping the embedded PostgreSQL cluster")
            cluster.stop()
