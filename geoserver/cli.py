"""The `geoserver` command line: serve, migrate, load, demo, layers, cluster."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from geoserver.cluster import EmbeddedCluster
from geoserver.settings import Settings
from layers.errors import GeoServerError
from layers.publish import Job

app = typer.Typer(
    help="City location services server: catalogue, OGC APIs and vector tiles on PostGIS.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
layers_app = typer.Typer(help="Look at the layer catalogue.", no_args_is_help=True)
cluster_app = typer.Typer(help="Manage the embedded PostgreSQL cluster in the data directory.", no_args_is_help=True)
app.add_typer(layers_app, name="layers")
app.add_typer(cluster_app, name="cluster")
console = Console(stderr=True)


def _fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code=1)


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


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _publish_all(url: str, settings: Settings, jobs: list[Job]) -> None:
    """Publish layers in a child process, one progress bar per layer."""
    from layers.publish import publish_in_subprocess

    with _progress() as bar:
        tasks = {job.manifest.id: bar.add_task(f"{job.manifest.id}: waiting", total=1) for job in jobs}

        def report(layer: str, stage: str, done: int, total: int) -> None:
            bar.update(tasks[layer], description=f"{layer}: {stage}", completed=done, total=max(total, 1))

        results = publish_in_subprocess(url, jobs, data_dir=settings.data_dir, progress=report)
        for result in results:
            bar.update(
                tasks[result.layer_id],
                description=f"{result.layer_id}: {result.feature_count:,} features, v{result.version}",
            )
    for result in results:
        if result.repaired or result.dropped_empty:
            console.print(
                f"{result.layer_id}: repaired {result.repaired} invalid geometries, "
                f"dropped {result.dropped_empty} empty ones"
            )


def _demo_stamp(settings: Settings) -> Path:
    return settings.data_dir / "demo" / "generated.json"


def _wanted_stamp(scale: float) -> dict[str, object]:
    from datetime import UTC, datetime

    from layers import demo

    # The day is part of it: the demo's events are placed around the day it was generated.
    return {"scale": scale, "seed": demo.DEFAULT_SEED, "day": datetime.now(UTC).date().isoformat()}


def load_demo_city(url: str, settings: Settings, scale: float | None = None) -> None:
    """Generate the demo City's files (unless already made today at this scale) and load every City manifest."""
    from layers import demo
    from layers.manifest import load_city_manifests

    out = settings.data_dir / "demo"
    scale = scale if scale is not None else settings.demo_scale
    stamp = _demo_stamp(settings)
    wanted = _wanted_stamp(scale)
    if not stamp.exists() or json.loads(stamp.read_text()) != wanted:
        console.print(f"Generating the demo City (scale {scale:g}) in {out}")
        with _progress() as bar:
            task = bar.add_task("demo data", total=len(demo.BASE_COUNTS))

            def report(layer: str, done: int, total: int) -> None:
                bar.update(task, description=f"demo data: {layer}", completed=done, total=total)

            demo.generate(out, scale=scale, progress=report)
        stamp.write_text(json.dumps(wanted))
    console.print("Loading the demo City into the catalogue")
    _publish_all(url, settings, [Job(m) for m in load_city_manifests()])


def _demo_is_stale(settings: Settings) -> bool:
    """True when the loaded demo City was generated on an earlier day at the configured scale (stale events)."""
    try:
        loaded = json.loads(_demo_stamp(settings).read_text())
    except (OSError, ValueError):
        return False
    wanted = _wanted_stamp(settings.demo_scale)
    same_city = {k: loaded.get(k) for k in ("scale", "seed")} == {k: wanted[k] for k in ("scale", "seed")}
    return same_city and loaded.get("day") != wanted["day"]


def _prepare(url: str, settings: Settings, *, load_demo: bool) -> None:
    from layers.migrate import upgrade
    from layers.publish import catalogue_size

    upgrade(url)
    if not load_demo:
        return
    if catalogue_size(url) == 0:
        load_demo_city(url, settings)
    elif _demo_is_stale(settings):
        console.print("The demo City's events were placed around an earlier day: refreshing it")
        load_demo_city(url, settings)


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
    from geoserver.logs import uvicorn_log_config

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
            _prepare(url, settings, load_demo=demo and settings.load_demo)
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
            lifespan="on",
        )
        if settings.workers > 1:
            # Each worker process builds its own app from the environment: hand them the database chosen here.
            os.environ["GEOSERVER_DATABASE_URL"] = url
            uvicorn.run("geoserver.app:app_from_environment", factory=True, workers=settings.workers, **options)
        else:
            uvicorn.Server(uvicorn.Config(create_app(settings, url), **options)).run()
    except GeoServerError as exc:
        _fail(exc.message)
    except (KeyboardInterrupt, _StopRequested):
        pass  # a requested stop is a clean stop: exit 0 once the cluster is down
    finally:
        if cluster is not None and cluster.started_here:
            console.print("Stopping the embedded PostgreSQL cluster")
            cluster.stop()


@app.command()
def migrate() -> None:
    """Create or upgrade the catalogue tables (Alembic migrations)."""
    from layers.migrate import upgrade

    settings = Settings()
    with _errors(), database(settings) as url:
        upgrade(url)
    console.print("The catalogue is up to date.")


@app.command()
def load(
    manifests: Annotated[
        list[Path] | None, typer.Argument(help="Manifest files (YAML). Default: every City layer.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option(help="Load this file instead of the manifest's source (one manifest).")
    ] = None,
    crs: Annotated[str | None, typer.Option(help="CRS of a file that has none, e.g. EPSG:3776.")] = None,
) -> None:
    """Load layers from their manifests: ingest files, or publish existing tables in place."""
    from layers.manifest import load_city_manifests, load_manifest
    from layers.migrate import upgrade

    settings = Settings()
    with _errors():
        if manifests:
            jobs = [Job(load_manifest(p), file=file, crs=crs, manifest_dir=p.resolve().parent) for p in manifests]
        else:
            jobs = [Job(m, crs=crs) for m in load_city_manifests()]
        if file is not None and len(jobs) != 1:
            _fail("--file needs exactly one manifest")
        with database(settings) as url:
            upgrade(url)
            _publish_all(url, settings, jobs)


@app.command("demo")
def demo_command(
    scale: Annotated[str, typer.Option(help="Size factor of the demo City, or 'bench' for benchmark sizes.")] = "1",
) -> None:
    """Generate the demo City and load it (replacing the demo layers)."""
    from layers import demo
    from layers.migrate import upgrade

    factor = float(demo.BENCH_SCALE) if scale == "bench" else _positive_float(scale)
    settings = Settings()
    with _errors(), database(settings) as url:
        upgrade(url)
        load_demo_city(url, settings, factor)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        _fail(f"--scale must be a number or 'bench', not {text!r}")
    if not 0 < value <= 1000:
        _fail("--scale must be between 0 and 1000")
    return value


@app.command()
def seed(
    layers: Annotated[str, typer.Argument(help="Layer ids, comma-separated (one composite tile per address).")],
    min_zoom: Annotated[int, typer.Option(help="First zoom level to build.")] = 10,
    max_zoom: Annotated[int, typer.Option(help="Last zoom level to build.")] = 14,
    url: Annotated[str | None, typer.Option(help="The running server [http://GEOSERVER_HOST:GEOSERVER_PORT].")] = None,
    workers: Annotated[int, typer.Option(min=1, max=16, help="Tiles requested at once.")] = 4,
) -> None:
    """Pre-build a layer's tiles for a zoom range by asking the running server for each (fills its tile cache)."""
    from geoserver.seed import plan
    from geoserver.seed import seed as run_seed

    settings = Settings()
    server = (url or f"http://{settings.host}:{settings.port}").rstrip("/")
    with _errors():
        template, tiles = plan(server, layers.split(","), min_zoom, max_zoom)
    with _progress() as bar:
        task = bar.add_task(f"tiles z{min_zoom}-{max_zoom}", total=len(tiles))
        report = run_seed(template, tiles, workers=workers, progress=lambda n: bar.advance(task, n))
    console.print(f"{report.built:,} tiles built, {report.empty:,} empty, {report.failed:,} failed")
    if report.failed:
        raise typer.Exit(code=1)


@layers_app.command("list")
def layers_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the catalogue's layers with their categories (all layers: this is an operator's view)."""
    import psycopg

    from layers.catalog import Principal, Registry

    settings = Settings()
    with _errors(), database(settings) as url, psycopg.connect(url) as conn:
        registry = Registry.load(conn)
    staff = Principal(subject="cli", is_staff=True)
    rows = registry.visible(staff)
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "id": layer.id,
                        "category": layer.category,
                        "title": layer.title_in("en"),
                        "features": layer.feature_count,
                        "visibility": "public" if layer.is_public else f"group:{layer.group_id}",
                        "demo": layer.is_demo,
                    }
                    for layer in rows
                ],
                indent=2,
            )
        )
        return
    header = ("ID", "CATEGORY", "GEOMETRY", "FEATURES", "VISIBILITY", "VERSION", "TITLE")
    lines = [header] + [
        (
            layer.id,
            layer.category,
            layer.geometry_type,
            f"{layer.feature_count:,}",
            "public" if layer.is_public else f"group:{layer.group_id}",
            str(layer.version),
            layer.title_in("en"),
        )
        for layer in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[-1])


@layers_app.command("show")
def layers_show(layer_id: str) -> None:
    """Show one layer's metadata and public fields."""
    import psycopg

    from layers.catalog import Principal, Registry

    settings = Settings()
    with _errors(), database(settings) as url, psycopg.connect(url) as conn:
        layer = Registry.load(conn).resolve(layer_id, Principal(subject="cli", is_staff=True))
    print(
        json.dumps(
            {
                "id": layer.id,
                "title": dict(layer.title),
                "description": dict(layer.description),
                "category": layer.category,
                "department": layer.department,
                "license": {"name": layer.license_name, "url": layer.license_url},
                "update_frequency": layer.update_frequency,
                "demo": layer.is_demo,
                "geometry_type": layer.geometry_type,
                "public_fields": [{"name": f.name, "type": f.data_type} for f in layer.fields],
                "bbox": layer.bbox,
                "features": layer.feature_count,
                "zoom": [layer.min_zoom, layer.max_zoom],
                "version": layer.version,
                "updated_at": layer.updated_at.isoformat(),
            },
            indent=2,
            ensure_ascii=False,
        )
    )


@layers_app.command("remove")
def layers_remove(layer_id: str) -> None:
    """Take a layer out of the catalogue and drop its managed table (a table published in place is kept)."""
    from layers.publish import unpublish

    settings = Settings()
    with _errors(), database(settings) as url:
        removed = unpublish(url, layer_id)
    if not removed:
        _fail(f"no layer named {layer_id!r}")
    console.print(f"Removed {layer_id!r}.")


@cluster_app.command("start")
def cluster_start() -> None:
    """Start the embedded cluster and leave it running; print its URL."""
    cluster = EmbeddedCluster(Settings().data_dir)
    with _errors():
        print(cluster.ensure_started())


@cluster_app.command("stop")
def cluster_stop() -> None:
    """Stop the embedded cluster."""
    with _errors():
        EmbeddedCluster(Settings().data_dir).stop()


@cluster_app.command("status")
def cluster_status() -> None:
    """Say whether the embedded cluster runs, and its URL."""
    cluster = EmbeddedCluster(Settings().data_dir)
    with _errors():
        port = cluster.running_port()
    if port is None:
        print("stopped")
        raise typer.Exit(code=3)
    print(f"running: {cluster.url()}")


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except GeoServerError as exc:
        _fail(exc.message)


def main() -> None:
    """Entry point of the `geoserver` command."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
