"""English and French: the server's own words, and which language a request wants (`lang=`, then Accept-Language)."""

from __future__ import annotations

from collections.abc import Callable

from geoserver.negotiation import weighted
from layers.errors import InvalidParameter

LANGUAGES = ("en", "fr")
# The web map speaks more: its message catalogues are geoserver/web/messages/<language>.json.
MAP_LANGUAGES = ("en", "fr", "pa", "zh-Hans")
DEFAULT_LANGUAGE = "en"

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "City location services",
        "description": "Open City layers as feature collections and vector tiles, with services near you.",
        "collections": "Collections",
        "collections_description": "The City's layers, each a collection of features.",
        "conformance": "Conformance",
        "api": "API definition (OpenAPI 3.0)",
        "api_doc": "API documentation",
        "catalog": "Open data catalogue (DCAT)",
        "tiling_schemes": "Tile matrix sets",
        "items": "Features",
        "feature": "Feature",
        "queryables": "Queryable properties",
        "tiles": "Vector tiles",
        "license": "Licence",
        "department": "Department",
        "update_frequency": "Update frequency",
        "last_updated": "Last updated",
        "extent": "Extent",
        "temporal_extent": "Time span",
        "features_count": "Features",
        "download": "Download",
        "next": "Next page",
        "prev": "Previous page",
        "this_document": "This document",
        "as_json": "This document as JSON",
        "as_html": "This document as HTML",
        "matched": "Matched",
        "returned": "Shown",
        "id": "Id",
        "geometry": "Geometry",
        "fields": "Fields",
        "language": "Langue : français",
        "other_language": "fr",
        "home": "Home",
        "collection": "Collection",
        "items_of": "Features of",
        "health": "Liveness",
        "ready": "Readiness",
        "none": "none",
        "map": "Map",
    },
    "fr": {
        "title": "Services de localisation de la Ville",
        "description": "Les couches ouvertes de la Ville en collections d'entités et en tuiles vectorielles, "
        "avec les services près de chez vous.",
        "collections": "Collections",
        "collections_description": "Les couches de la Ville, chacune une collection d'entités.",
        "conformance": "Conformité",
        "api": "Définition de l'API (OpenAPI 3.0)",
        "api_doc": "Documentation de l'API",
        "catalog": "Catalogue de données ouvertes (DCAT)",
        "tiling_schemes": "Grilles de tuiles",
        "items": "Entités",
        "feature": "Entité",
        "queryables": "Propriétés interrogeables",
        "tiles": "Tuiles vectorielles",
        "license": "Licence",
        "department": "Service",
        "update_frequency": "Fréquence de mise à jour",
        "last_updated": "Dernière mise à jour",
        "extent": "Étendue",
        "temporal_extent": "Période",
        "features_count": "Entités",
        "download": "Télécharger",
        "next": "Page suivante",
        "prev": "Page précédente",
        "this_document": "Ce document",
        "as_json": "Ce document en JSON",
        "as_html": "Ce document en HTML",
        "matched": "Trouvées",
        "returned": "Affichées",
        "id": "Identifiant",
        "geometry": "Géométrie",
        "fields": "Champs",
        "language": "Language: English",
        "other_language": "en",
        "home": "Accueil",
        "collection": "Collection",
        "items_of": "Entités de",
        "health": "Vivacité",
        "ready": "Disponibilité",
        "none": "aucune",
        "map": "Carte",
    },
}


def text(lang: str, key: str) -> str:
    """One of the server's own words in `lang`."""
    return STRINGS.get(lang, STRINGS[DEFAULT_LANGUAGE])[key]


def negotiate(lang_param: str | None, accept_language: str | None) -> str:
    """`lang=` when given (an unsupported one is a 400), else the best of Accept-Language, else English."""
    if lang_param is not None:
        code = lang_param.strip().lower().replace("_", "-").split("-", 1)[0]
        if code not in LANGUAGES:
            raise InvalidParameter(f"lang must be one of {', '.join(LANGUAGES)}", parameter="lang")
        return code
    return _best(accept_language, lambda tag: code if (code := tag.split("-", 1)[0]) in LANGUAGES else None)


def map_language(tag: str) -> str | None:
    """The web map's language for a BCP 47 tag (`zh`, `zh-CN`, `zh-Hans-SG` are Simplified Chinese), or None."""
    parts = tag.strip().lower().replace("_", "-").split("-")
    if parts[0] in ("en", "fr", "pa"):
        return parts[0]
    if parts[0] == "zh" and "hant" not in parts and not ("hans" not in parts and {"tw", "hk", "mo"} & set(parts)):
        return "zh-Hans"
    return None


def negotiate_map(lang_param: str | None, accept_language: str | None) -> str:
    """The web map's language (and `/search`'s): `lang=` (an unsupported one is a 400), Accept-Language, English."""
    if lang_param is not None:
        code = map_language(lang_param)
        if code is None:
            raise InvalidParameter(f"lang must be one of {', '.join(MAP_LANGUAGES)}", parameter="lang")
        return code
    return _best(accept_language, map_language)


def _best(accept_language: str | None, match: Callable[[str], str | None]) -> str:
    """The most preferred language of Accept-Language that `match` knows, else English."""
    best, best_q = DEFAULT_LANGUAGE, -1.0
    for position, (tag, q) in enumerate(weighted(accept_language)):
        code = match(tag)
        # The earlier of two equal preferences wins: subtract a little per position.
        score = q - position * 1e-6
        if code is not None and q > 0 and score > best_q:
            best, best_q = code, score
    return best
