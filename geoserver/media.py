"""Media types the server speaks, named once."""

from __future__ import annotations

JSON = "application/json"
GEOJSON = "application/geo+json"
HTML = "text/html"
JSON_LD = "application/ld+json"
SCHEMA_JSON = "application/schema+json"
OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"
MVT = "application/vnd.mapbox-vector-tile"
CSV = "text/csv"
GEOPACKAGE = "application/geopackage+sqlite3"
STYLE_JSON = "application/vnd.mapbox.style+json"
# Types a client asking for JSON may name in Accept.
JSON_TYPES = (JSON, GEOJSON, SCHEMA_JSON, JSON_LD, "application/vnd.oai.openapi+json")
