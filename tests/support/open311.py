"""Open311 test helpers: places inside the demo City, submitting over plain HTTP, removing what tests submitted."""

from __future__ import annotations

from typing import Any

import psycopg

POTHOLE = {"service_code": "POTHOLE", "attribute[SIZE]": "medium"}
NOISE = {"service_code": "NOISE", "attribute[SOURCES][]": ["music", "vehicle"]}


def place(database_url: str, n: int) -> tuple[float, float]:
    """A point (lon, lat) inside the demo City: inside the n-th community, different for each n."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM layer_data.communities "
            "ORDER BY community_code OFFSET %s LIMIT 1) AS s",
            [n % 200],
        ).fetchone()
    assert row is not None
    return float(row[0]), float(row[1])


def form(key: str, lonlat: tuple[float, float], fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The fields of a GeoReport POST at a place."""
    return {"api_key": key, "long": repr(lonlat[0]), "lat": repr(lonlat[1]), **fields, **extra}


def stored_counts(database_url: str) -> tuple[int, int, int]:
    """Rows in the requests layer, in the submitted requests and in the requesters tables."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM layer_data.service_requests), "
            "(SELECT count(*) FROM geoserver.open311_requests), (SELECT count(*) FROM geoserver.open311_requesters)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def remove_submitted(database_url: str) -> None:
    """Take every request submitted over Open311 out of the layer and the Open311 tables, and staff's notes."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "DELETE FROM layer_data.service_requests WHERE request_id IN "
            "(SELECT request_id FROM geoserver.open311_requests)"
        )
        conn.execute("DELETE FROM geoserver.open311_requests")
        conn.execute("DELETE FROM geoserver.open311_status")
