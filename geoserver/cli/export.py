"""`geoserver export`: public layers as files for static hosting (object storage, a CDN) when servers are saturated."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import typer

from geoserver.cli.common import app, console, database, errors, fail, progress_bar
from geoserver.settings import Settings
from layers.catalogue.registry import load_registry
from tiles.export import ExportPlan, exportable, write_archive, write_style, zoom_range

export_app = typer.Typer(help="Export public layers for static hosting.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("pmtiles")
def export_pmtiles(
    layers: Annotated[
        str,
        typer.Argument(
            metavar="LAYER[,LAYER...]", help="Public layer ids: one composite tile per address, as the server's."
        ),
    ],
    out: Annotated[
        Path, typer.Argument(metavar="OUT.pmtiles", help="The archive to write (replaced only once it is complete).")
    ],
    zooms: Annotated[str, typer.Option(help="Zoom levels FIRST-LAST; each layer keeps its own zoom range.")] = "0-14",
    style: Annotated[
        Path | None, typer.Option(help="Also write a MapLibre style that reads the archive (pmtiles protocol).")
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(help="Where browsers fetch the archive, for the style (default: its file name, beside the page)."),
    ] = None,
    lang: Annotated[str, typer.Option(help="Language of the titles in the metadata and style: en or fr.")] = "en",
    workers: Annotated[int, typer.Option(min=1, max=8, help="Tile queries run at once.")] = 2,
) -> None:
    """Write a PMTiles archive of the tiles the server serves for LAYERS (empty tiles left out)."""
    if lang not in ("en", "fr"):
        fail(f"--lang must be en or fr, not {lang!r}")
    settings = Settings()
    with errors():
        first, last = zoom_range(zooms)
        if style is not None and not style.parent.is_dir():
            fail(f"no folder {str(style.parent)!r} to write the style in")
        with database(settings) as db_url:
            chosen = exportable(load_registry(db_url), layers.split(","), cap=settings.max_composite_layers)
            plan = ExportPlan(tuple(chosen), first, last)
            for layer in chosen:
                if not plan.zooms_of(layer):
                    console.print(f"{layer.id}: drawn at zooms {layer.min_zoom}-{layer.max_zoom} only, none in {zooms}")
            started = time.monotonic()
            with progress_bar() as bar:
                task = bar.add_task(f"tiles z{first}-{last}", total=plan.count())

                def advance(done: int) -> None:
                    bar.advance(task, done)

                report = asyncio.run(write_archive(db_url, plan, out, workers=workers, lang=lang, progress=advance))
            seconds = time.monotonic() - started
        if style is not None:
            write_style(plan, style, url or out.name, lang)
    console.print(
        f"{out}: {report.tiles:,} tiles at zooms {report.min_zoom}-{report.max_zoom} ({report.empty:,} empty ones "
        f"left out), {report.size_bytes / 1e6:.1f} MB in {seconds:.1f} s"
    )
    if style is not None:
        console.print(f"{style}: a MapLibre style reading pmtiles://{url or out.name}")
