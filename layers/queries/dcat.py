"""The public open data catalogue as DCAT (JSON-LD): one `dcat:Dataset` per public layer, with its downloads."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from layers.catalogue.records import Layer
from layers.queries.downloads import DOWNLOADS
from layers.queries.times import iso

CONTEXT = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "schema": "https://schema.org/",
    "locn": "http://www.w3.org/ns/locn#",
}
# The EU frequency vocabulary (DCAT-AP): every value a manifest may give has one.
FREQUENCY = "http://publications.europa.eu/resource/authority/frequency/"
FREQUENCIES = {
    "continual": "CONT", "daily": "DAILY", "weekly": "WEEKLY", "monthly": "MONTHLY", "quarterly": "QUARTERLY",
    "annual": "ANNUAL", "irregular": "IRREG", "never": "NEVER",
}  # fmt: skip
MEDIA_TYPES = "https://www.iana.org/assignments/media-types/"
LANGUAGES = ("en", "fr")


def _texts(values: dict[str, str] | Any) -> list[dict[str, str]]:
    return [{"@value": values[lang], "@language": lang} for lang in LANGUAGES if values.get(lang)]


def _when(value: datetime | None) -> dict[str, str] | None:
    if value is None:
        return None
    return {"@value": iso(value), "@type": "xsd:dateTime"}


def _distributions(layer: Layer, url: str) -> list[dict[str, Any]]:
    """The layer's downloads, and its OGC API Features items."""
    distributions: list[dict[str, Any]] = [
        {
            "@type": "dcat:Distribution",
            "dct:title": f"{name} ({layer.title_in('en')})",
            "dcat:downloadURL": {"@id": f"{url}/download.{suffix}"},
            "dcat:accessURL": {"@id": f"{url}/download.{suffix}"},
            "dcat:mediaType": {"@id": f"{MEDIA_TYPES}{media_type}"},
            "dct:format": name,
        }
        for suffix, media_type, _, name in DOWNLOADS
    ]
    distributions.append(
        {
            "@type": "dcat:Distribution",
            "dct:title": "OGC API - Features",
            "dcat:accessURL": {"@id": f"{url}/items"},
            "dcat:mediaType": {"@id": f"{MEDIA_TYPES}application/geo+json"},
            "dct:conformsTo": {"@id": "http://www.opengis.net/spec/ogcapi-features-1/1.0"},
        }
    )
    return distributions


def dataset(layer: Layer, base: str) -> dict[str, Any]:
    """One layer as a DCAT dataset."""
    url = f"{base}/collections/{quote(layer.id, safe='')}"
    publisher = {"@type": "foaf:Organization", "foaf:name": layer.publisher}
    doc: dict[str, Any] = {
        "@id": url,
        "@type": "dcat:Dataset",
        "dct:identifier": layer.id,
        "dct:title": _texts(layer.title),
        "dct:description": _texts(layer.description),
        "dcat:keyword": list(layer.keywords),
        "dcat:theme": layer.category,
        "dct:type": "community contribution" if layer.is_community else "City open data",
        "dct:publisher": publisher,
        "dct:creator": publisher,
        "dct:license": {"@id": layer.license_url} if layer.license_url else layer.license_name,
        "dct:rights": layer.license_name,
        "dct:accrualPeriodicity": {"@id": FREQUENCY + FREQUENCIES.get(layer.update_frequency, "UNKNOWN")},
        "dct:modified": _when(layer.updated_at),
        "dcat:landingPage": {"@id": url},
        "dcat:distribution": _distributions(layer, url),
        "schema:variableMeasured": [
            {
                "@type": "schema:PropertyValue",
                "schema:name": item.name,
                "schema:description": _texts(item.description or {}),
            }
            for item in layer.fields
        ],
    }
    if layer.bbox is not None:
        xmin, ymin, xmax, ymax = layer.bbox
        wkt = f"POLYGON(({xmin} {ymin},{xmax} {ymin},{xmax} {ymax},{xmin} {ymax},{xmin} {ymin}))"
        doc["dct:spatial"] = {"@type": "dct:Location", "dcat:bbox": wkt}
    if layer.temporal_start is not None:
        doc["dct:temporal"] = {
            "@type": "dct:PeriodOfTime",
            "dcat:startDate": _when(layer.temporal_start),
            "dcat:endDate": _when(layer.temporal_end),
        }
    return doc


def catalog(
    layers: Iterable[Layer], base: str, *, title: dict[str, str], description: dict[str, str]
) -> dict[str, Any]:
    """The DCAT catalogue of the given (public) layers."""
    layers = list(layers)
    modified = max((layer.updated_at for layer in layers), default=None)
    return {
        "@context": CONTEXT,
        "@id": f"{base}/catalog",
        "@type": "dcat:Catalog",
        "dct:title": _texts(title),
        "dct:description": _texts(description),
        "dct:language": [{"@id": f"http://id.loc.gov/vocabulary/iso639-1/{lang}"} for lang in LANGUAGES],
        "dct:modified": _when(modified),
        "foaf:homepage": {"@id": f"{base}/"},
        "dcat:dataset": [dataset(layer, base) for layer in layers],
    }
