"""TileJSON 3.0 documents and the demo City's MapLibre styles, built from catalogue layers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from layers.catalogue.records import Layer
from layers.catalogue.search_text import text_fields
from tiles.mvt import CLUSTER_COUNT
from tiles.source import TileSources

LANGUAGES = ("en", "fr")
STYLE_NAMES = {"en": "City of Calgary (demo data)", "fr": "Ville de Calgary (données de démonstration)"}


def layer_list(layers: Sequence[Layer]) -> str:
    """The URL path segment naming several layers."""
    return ",".join(quote(layer.id, safe="") for layer in layers)


def bounds_of(layers: Sequence[Layer]) -> list[float]:
    """The longitude/latitude box around the layers' extents (the whole grid when none has one)."""
    boxes = [layer.bbox for layer in layers if layer.bbox is not None]
    if not boxes:
        return [-180.0, -85.0511, 180.0, 85.0511]
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]


def tileset_metadata(layers: Sequence[Layer], sources: TileSources, lang: str = "en") -> dict[str, Any]:
    """What TileJSON says about a composite of `layers` besides where its tiles are (a PMTiles archive says it too)."""
    bounds = bounds_of(layers)
    minzoom = min(layer.min_zoom for layer in layers)
    maxzoom = max(layer.max_zoom for layer in layers)
    licences = sorted({layer.license_name for layer in layers})
    return {
        "name": ", ".join(layer.title_in(lang) for layer in layers),
        "description": " ".join(layer.description_in(lang) for layer in layers)[:2000],
        "version": "1.0.0",
        "scheme": "xyz",
        "minzoom": minzoom,
        "maxzoom": maxzoom,
        "bounds": bounds,
        "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, max(minzoom, 11)],
        "attribution": "; ".join(licences),
        "vector_layers": [sources.get(layer.id).vector_layer() for layer in layers],
    }


def tilejson(layers: Sequence[Layer], sources: TileSources, base_url: str, lang: str = "en") -> dict[str, Any]:
    """A TileJSON 3.0.0 document for a composite of `layers` (already resolved for the caller)."""
    tiles = [f"{base_url}/tiles/{layer_list(layers)}/{{z}}/{{x}}/{{y}}.pbf"]
    return {"tilejson": "3.0.0", "tiles": tiles, **tileset_metadata(layers, sources, lang)}


# Colours per facility category and per layer: readable on a light background, distinct for colour-blind readers
# where possible (Okabe-Ito palette first).
FACILITY_COLOURS = {
    "library": "#0072B2",
    "recreation_centre": "#009E73",
    "fire_station": "#D55E00",
    "park": "#2E7D32",
    "clinic": "#CC79A7",
    "washroom": "#56B4E9",
    "transit_stop": "#7F7F7F",
    "community_hall": "#E69F00",
}
STATUS_COLOURS = {"open": "#D55E00", "in_progress": "#E69F00", "closed": "#7F7F7F"}


def _match(field: str, colours: dict[str, str], default: str) -> list[Any]:
    expression: list[Any] = ["match", ["get", field]]
    for value, colour in colours.items():
        expression += [value, colour]
    return [*expression, default]


def _style_layers(layer: Layer, clustered: bool) -> list[dict[str, Any]]:
    base = {"source": "city", "source-layer": layer.id, "minzoom": layer.min_zoom}
    lid = layer.id
    if "Polygon" in layer.geometry_type:
        outline = "#444444" if layer.category == "boundaries" else "#9E9E9E"
        fill = {"boundaries": "#FFFFFF", "property": "#F5DEB3"}.get(layer.category, "#BDBDBD")
        opacity = 0.05 if layer.category == "boundaries" else 0.4
        stroke = 2 if lid == "wards" else 1
        return [
            {**base, "id": f"{lid}-fill", "type": "fill", "paint": {"fill-color": fill, "fill-opacity": opacity}},
            {**base, "id": f"{lid}-line", "type": "line", "paint": {"line-color": outline, "line-width": stroke}},
        ]
    if "LineString" in layer.geometry_type:
        line = "#1565C0" if lid == "water_mains" else "#616161"
        width: Any = 1.5
        if layer.category_field:
            width = ["match", ["get", layer.category_field], "highway", 4, "arterial", 3, "collector", 2, 1]
        return [{**base, "id": f"{lid}-line", "type": "line", "paint": {"line-color": line, "line-width": width}}]
    colour: Any = {"events": "#6A1B9A", "infrastructure": "#F9A825"}.get(layer.category, "#0072B2")
    if layer.category == "facilities" and layer.category_field:
        colour = _match(layer.category_field, FACILITY_COLOURS, "#0072B2")
    if layer.category == "service_requests":
        colour = _match("status", STATUS_COLOURS, "#D55E00")
    radius: Any = 4 if layer.category != "infrastructure" else 2
    if clustered:
        radius = ["case", ["has", CLUSTER_COUNT], ["min", 14, ["+", 2, ["sqrt", ["get", CLUSTER_COUNT]]]], radius]
    paint = {
        "circle-color": colour,
        "circle-radius": radius,
        "circle-stroke-color": "#FFFFFF",
        "circle-stroke-width": 1,
    }
    return [{**base, "id": f"{lid}-circle", "type": "circle", "paint": paint}]


def _label_layer(layer: Layer) -> dict[str, Any] | None:
    """Names on the map: the layer's first searchable text field (a name), drawn with the reader's own fonts (the
    style has no glyph server: MapLibre GL JS then draws glyphs locally), dark on a white halo for contrast."""
    names = text_fields(layer.searchable_fields, {f.name: f.data_type for f in layer.fields})
    if not names:
        return None
    polygon = "Polygon" in layer.geometry_type
    layout: dict[str, Any] = {
        "text-field": ["get", names[0]],
        "text-font": ["sans-serif"],
        "text-size": 13 if polygon else 12,
        "text-max-width": 8,
    }
    if not polygon:
        layout.update({"text-anchor": "top", "text-offset": [0, 0.6], "text-optional": True})
    return {
        "id": f"{layer.id}-label",
        "type": "symbol",
        "source": "city",
        "source-layer": layer.id,
        "minzoom": max(layer.min_zoom, 12 if polygon else 14),
        # A polygon is cut at tile edges and each piece gets its name: past z14, too many repeats.
        **({"maxzoom": 15} if polygon else {}),
        "layout": layout,
        "paint": {"text-color": "#1D2733", "text-halo-color": "#FFFFFF", "text-halo-width": 1.5},
    }


def style(layers: Sequence[Layer], sources: TileSources, base_url: str, lang: str) -> dict[str, Any]:
    """A MapLibre style (version 8) drawing `layers` from the server's composite tiles."""
    source = {"type": "vector", "url": f"{base_url}/tiles/{layer_list(layers)}.json"}
    return _style(layers, sources, source, lang)


def archive_style(layers: Sequence[Layer], sources: TileSources, archive_url: str, lang: str) -> dict[str, Any]:
    """The same style drawing `layers` from a PMTiles archive, through the `pmtiles` protocol of MapLibre pages.

    `archive_url` is where browsers fetch the archive; a relative one is resolved against the page, not the style.
    """
    return _style(layers, sources, {"type": "vector", "url": f"pmtiles://{archive_url}"}, lang)


def _style(layers: Sequence[Layer], sources: TileSources, source: dict[str, str], lang: str) -> dict[str, Any]:
    order = {"boundaries": 0, "property": 1, "infrastructure": 2, "service_requests": 3, "events": 4, "facilities": 5}
    drawn = sorted(layers, key=lambda layer: (order.get(layer.category, 3), layer.id))
    style_layers: list[dict[str, Any]] = [
        {"id": "background", "type": "background", "paint": {"background-color": "#F4F1EA"}}
    ]
    labels = [label for label in map(_label_layer, drawn) if label is not None]
    for layer in drawn:
        for style_layer in _style_layers(layer, bool(sources.get(layer.id).cluster_zooms)):
            style_layers.append(style_layer)
    # Labels above every shape, so that no layer drawn later hides a name.
    style_layers += labels
    by_id = {layer.id: layer for layer in drawn}
    for style_layer in style_layers[1:]:
        layer = by_id[style_layer["source-layer"]]
        style_layer["metadata"] = {
            "geoserver:title": layer.title_in(lang),
            "geoserver:category": layer.category,
            "geoserver:community": layer.is_community,
        }
    bounds = bounds_of(layers)
    return {
        "version": 8,
        "name": STYLE_NAMES.get(lang, STYLE_NAMES["en"]),
        "metadata": {"geoserver:language": lang, "geoserver:demo": any(layer.is_demo for layer in layers)},
        "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2],
        "zoom": 11,
        "sources": {"city": source},
        "layers": style_layers,
    }
