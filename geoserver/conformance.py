"""The conformance classes this server declares at `/conformance`."""

from __future__ import annotations

from tiles.conformance import TILES_CONFORMANCE

_FEATURES = "http://www.opengis.net/spec/ogcapi-features"
_CQL2 = "http://www.opengis.net/spec/cql2/1.0/conf"

FEATURES_CONFORMANCE: list[str] = [
    f"{_FEATURES}-1/1.0/conf/core",
    f"{_FEATURES}-1/1.0/conf/geojson",
    f"{_FEATURES}-1/1.0/conf/html",
    f"{_FEATURES}-1/1.0/conf/oas30",
    f"{_FEATURES}-2/1.0/conf/crs",
    f"{_FEATURES}-3/1.0/conf/queryables",
    f"{_FEATURES}-3/1.0/conf/queryables-query-parameters",
    f"{_FEATURES}-3/1.0/conf/filter",
    f"{_FEATURES}-3/1.0/conf/features-filter",
    f"{_FEATURES}-4/1.0/conf/create-replace-delete",
    f"{_FEATURES}-4/1.0/conf/update",
    f"{_FEATURES}-4/1.0/conf/optimistic-locking-etags",
    f"{_FEATURES}-4/1.0/conf/features",
    f"{_CQL2}/cql2-text",
    f"{_CQL2}/cql2-json",
    f"{_CQL2}/basic-cql2",
    f"{_CQL2}/advanced-comparison-operators",
    f"{_CQL2}/case-insensitive-comparison",
    f"{_CQL2}/basic-spatial-functions",
    f"{_CQL2}/basic-spatial-functions-plus",
    f"{_CQL2}/spatial-functions",
    f"{_CQL2}/temporal-functions",
    f"{_CQL2}/property-property",
]

# Conformance classes of other parts of the server, declared where they are built.
EXTRA_CONFORMANCE: list[str] = [*TILES_CONFORMANCE]


def conformance() -> list[str]:
    """Every declared conformance class."""
    return [*FEATURES_CONFORMANCE, *EXTRA_CONFORMANCE]
