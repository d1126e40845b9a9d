"""`geoserver layers`: look at the catalogue, and take a layer out of it."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from geoserver.cli.common import app, console, database, errors, fail
from geoserver.settings import Settings
from layers.catalogue.records import IN_PLACE, Layer

layers_app = typer.Typer(help="Look at the layer catalogue.", no_args_is_help=True)
app.add_typer(layers_app, name="layers")


@layers_app.command("list")
def layers_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the catalogue's layers with their categories (all layers: this is an operator's view)."""
    from layers.catalogue.registry import load_registry
    from layers.catalogue.visibility import Principal

    settings = Settings()
    with errors(), database(settings) as url:
        registry = load_registry(url)
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
                        "visibility": layer.visibility,
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
            layer.visibility,
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
    """Show one layer's metadata, public fields, where its rows are and how its tiles are made."""
    from layers.catalogue.registry import load_registry
    from layers.catalogue.visibility import Principal
    from layers.ingest.optimize import optimizing, ordered_by

    settings = Settings()
    with errors(), database(settings) as url:
        layer = load_registry(url).resolve(layer_id, Principal(subject="cli", is_staff=True))
        in_place = layer.source_kind == IN_PLACE
        running = optimizing(url, layer.id) if in_place else None
        ordered = ordered_by(url, layer.table_schema, layer.table_name) if in_place else None
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
                "source": _source(layer, running, ordered),
            },
            indent=2,
            ensure_ascii=False,
        )
    )


def _source(layer: Layer, running: str | None, ordered: str | None) -> dict[str, object]:
    """Where the rows are, whether the tiles read a stored EPSG:3857 column and the rows are in an index's order
    (`CLUSTER`), and any optimization under way."""
    source: dict[str, object] = {
        "kind": "table published in place" if layer.source_kind == IN_PLACE else "managed",
        "table": f"{layer.table_schema}.{layer.table_name}",
        "geometry_column": layer.geometry_column,
        "geometry_3857_column": layer.geometry_3857_column,
        "optimized": layer.geometry_3857_column is not None,
    }
    if layer.geometry_3857_column is None:
        source["tiles"] = "transformed per tile from EPSG:4326; `geoserver publish --optimize` adds a stored column"
    if layer.source_kind == IN_PLACE:
        source["rows_ordered_by"] = ordered  # the index last used by CLUSTER, which --optimize runs
    if running is not None:
        source["optimizing"] = running
    return source


@layers_app.command("remove")
def layers_remove(layer_id: str) -> None:
    """Take a layer out of the catalogue and drop its managed table (a table published in place is kept)."""
    from layers.ingest.publish import unpublish

    settings = Settings()
    with errors(), database(settings) as url:
        removed = unpublish(url, layer_id)
    if not removed:
        fail(f"no layer named {layer_id!r}")
    console.print(f"Removed {layer_id!r}.")
