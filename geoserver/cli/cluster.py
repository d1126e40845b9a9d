"""`geoserver cluster`: manage the embedded PostgreSQL cluster by hand."""

from __future__ import annotations

import typer

from geoserver.cli.common import app, errors
from geoserver.cluster import EmbeddedCluster
from geoserver.settings import Settings

cluster_app = typer.Typer(help="Manage the embedded PostgreSQL cluster in the data directory.", no_args_is_help=True)
app.add_typer(cluster_app, name="cluster")


@cluster_app.command("start")
def cluster_start() -> None:
    """Start the embedded cluster and leave it running; print its URL."""
    cluster = EmbeddedCluster(Settings().data_dir)
    with errors():
        print(cluster.ensure_started())


@cluster_app.command("stop")
def cluster_stop() -> None:
    """Stop the embedded cluster."""
    with errors():
        EmbeddedCluster(Settings().data_dir).stop()


@cluster_app.command("status")
def cluster_status() -> None:
    """Say whether the embedded cluster runs, and its URL."""
    cluster = EmbeddedCluster(Settings().data_dir)
    with errors():
        port = cluster.running_port()
    if port is None:
        print("stopped")
        raise typer.Exit(code=3)
    print(f"running: {cluster.url()}")
