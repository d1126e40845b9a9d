"""Commands that load and prepare data: migrate, load, demo, seed; and the demo City's first-start logic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from geoserver.cli.common import app, console, database, errors, fail, progress_bar
from geoserver.settings import Settings
from layers.ingest.publish import Job


def publish_jobs(url: str, settings: Settings, jobs: list[Job]) -> None:
    """Publish layers in a child process, one progress bar per layer."""
    from layers.ingest.publish import publish_in_subprocess

    for manifest in (job.manifest for job in jobs if job.manifest is not None):
        if missing := manifest.missing_translations:
            # Asked for, not required: the catalogue shows English and says so in each collection's `language`.
            console.print(f"{manifest.id}: no French {' or '.join(missing)}; English is used in French answers")

    with progress_bar() as bar:
        tasks = {job.layer_id: bar.add_task(f"{job.layer_id}: waiting", total=1) for job in jobs}

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


def load_demo_city(url: str, settings: Settings, scale: float | None = None, *, replace_edits: bool = False) -> None:
    """Generate the demo City's files (unless already made today at this scale) and load every City manifest; a
    layer with features written through the API since its last load (311 requests, edits) is kept as it is, unless
    `replace_edits`."""
    from layers import demo
    from layers.catalogue.manifest import load_city_manifests

    out = settings.data_dir / "demo"
    scale = scale if scale is not None else settings.demo_scale
    stamp = _demo_stamp(settings)
    wanted = _wanted_stamp(scale)
    if not stamp.exists() or json.loads(stamp.read_text()) != wanted:
        console.print(f"Generating the demo City (scale {scale:g}) in {out}")
        with progress_bar() as bar:
            task = bar.add_task("demo data", total=len(demo.BASE_COUNTS))

            def report(layer: str, done: int, total: int) -> None:
                bar.update(task, description=f"demo data: {layer}", completed=done, total=total)

            demo.generate(out, scale=scale, progress=report)
        stamp.write_text(json.dumps(wanted))
    console.print("Loading the demo City into the catalogue")
    manifests = load_city_manifests()
    if not replace_edits:
        kept = _written_through_the_api(url, [m.id for m in manifests])
        for layer_id, count in kept.items():
            console.print(f"{layer_id}: kept as it is ({count} feature(s) written through the API since its last load)")
        manifests = [m for m in manifests if m.id not in kept]
    publish_jobs(url, settings, [Job(m, replace_edits=replace_edits) for m in manifests])


def _written_through_the_api(url: str, layer_ids: list[str]) -> dict[str, int]:
    from layers.ingest.publish import api_writes, catalogue_size

    return api_writes(url, layer_ids) if catalogue_size(url) else {}


def _demo_is_stale(settings: Settings) -> bool:
    """True when the loaded demo City was generated on an earlier day at the configured scale (stale events)."""
    try:
        loaded = json.loads(_demo_stamp(settings).read_text())
    except (OSError, ValueError):
        return False
    wanted = _wanted_stamp(settings.demo_scale)
    same_city = {k: loaded.get(k) for k in ("scale", "seed")} == {k: wanted[k] for k in ("scale", "seed")}
    return same_city and loaded.get("day") != wanted["day"]


def prepare(url: str, settings: Settings, *, load_demo: bool) -> None:
    from layers.catalogue.migrate import upgrade
    from layers.ingest.publish import catalogue_size

    upgrade(url)
    if not load_demo:
        return
    if catalogue_size(url) == 0:
        load_demo_city(url, settings)
    elif _demo_is_stale(settings):
        console.print("The demo City's events were placed around an earlier day: refreshing it")
        load_demo_city(url, settings)


@app.command()
def migrate() -> None:
    """Create or upgrade the catalogue tables (Alembic migrations)."""
    from layers.catalogue.migrate import upgrade

    settings = Settings()
    with errors(), database(settings) as url:
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
    replace_edits: Annotated[
        bool, typer.Option(help="Load even over features written through the API since the last load (lost).")
    ] = False,
) -> None:
    """Load layers from their manifests: ingest files, or publish existing tables in place.

    A layer whose features were written through the API since its last load (edits, 311 requests) is not loaded
    over unless --replace-edits is given: nothing is loaded, and the layers are named."""
    from layers.catalogue.manifest import load_city_manifests, load_manifest
    from layers.catalogue.migrate import upgrade

    settings = Settings()
    with errors():
        if manifests:
            jobs = [
                Job(load_manifest(p), file=file, crs=crs, manifest_dir=p.resolve().parent, replace_edits=replace_edits)
                for p in manifests
            ]
        else:
            jobs = [Job(m, crs=crs, replace_edits=replace_edits) for m in load_city_manifests()]
        if file is not None and len(jobs) != 1:
            fail("--file needs exactly one manifest")
        with database(settings) as url:
            upgrade(url)
            written = _written_through_the_api(url, [job.layer_id for job in jobs]) if not replace_edits else {}
            if written:
                named = ", ".join(f"{layer_id} ({count})" for layer_id, count in written.items())
                fail(
                    f"features were written through the API since the last load of: {named}. Loading would replace "
                    "them (their versions stay in history); nothing was loaded. Pass --replace-edits to load anyway"
                )
            publish_jobs(url, settings, jobs)


@app.command("demo")
def demo_command(
    scale: Annotated[str, typer.Option(help="Size factor of the demo City, or 'bench' for benchmark sizes.")] = "1",
    replace_edits: Annotated[
        bool, typer.Option(help="Also replace layers with features written through the API since their last load.")
    ] = False,
) -> None:
    """Generate the demo City and load it (replacing the demo layers; a layer with features written through the
    API since its last load, such as 311 requests, is kept unless --replace-edits)."""
    from layers import demo
    from layers.catalogue.migrate import upgrade

    factor = float(demo.BENCH_SCALE) if scale == "bench" else _positive_float(scale)
    settings = Settings()
    with errors(), database(settings) as url:
        upgrade(url)
        load_demo_city(url, settings, factor, replace_edits=replace_edits)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        fail(f"--scale must be a number or 'bench', not {text!r}")
    if not 0 < value <= 1000:
        fail("--scale must be between 0 and 1000")
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
    with errors():
        template, tiles = plan(server, layers.split(","), min_zoom, max_zoom)
    with progress_bar() as bar:
        task = bar.add_task(f"tiles z{min_zoom}-{max_zoom}", total=len(tiles))
        report = run_seed(template, tiles, workers=workers, progress=lambda n: bar.advance(task, n))
    console.print(f"{report.built:,} tiles built, {report.empty:,} empty, {report.failed:,} failed")
    if report.failed:
        raise typer.Exit(code=1)
