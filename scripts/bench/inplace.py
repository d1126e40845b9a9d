"""The City's own tables, as a GIS team has them: built with plain SQL, then published in place by this server.

`city.parcels` (200,000 polygons), `city.service_requests` (1,000,000 points), `city.roads` (150,000 lines of 9
vertices) and `city.facilities` (20,000 points, 8 categories, opening hours): plain `geometry` columns in EPSG:4326
with no typmod (as `CREATE TABLE AS` leaves them), a primary key and a GiST index each, no stored EPSG:3857 column.
The values come from PostgreSQL's own `random()` after `setseed`, so every run builds the same city. The tile
benchmark also copies the parcels, as built, to `city.parcels_optimized` and publishes that with `--optimize`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SCHEMA = "city"
SEED = 0.20261127
# Calgary's extent: lon -114.32..-113.86, lat 50.84..51.21; downtown near -114.07, 51.045.
X0, DX, Y0, DY = -114.32, 0.46, 50.84, 0.37
DOWNTOWN = (-114.07, 51.045)

TABLES: dict[str, tuple[int, str]] = {
    "parcels": (
        200_000,
        """SELECT i AS id, 'P' || lpad(i::text, 7, '0') AS roll_number,
          (ARRAY['residential','commercial','industrial','park','institutional'])[1 + i % 5] AS land_use,
          round((w * h * 7.0e9)::numeric, 1)::float8 AS area_m2,
          ST_SetSRID(ST_MakeEnvelope(x, y, x + w, y + h), 4326) AS geom
        FROM (SELECT i, {x0} + random() * {dx_} AS x, {y0} + random() * {dy_} AS y,
          0.0002 + random() * 0.0004 AS w, 0.00015 + random() * 0.0003 AS h
          FROM generate_series(1, 200000) AS i) AS s""",
    ),
    "service_requests": (
        1_000_000,
        """SELECT i AS id, 'SR-' || i AS request_id,
          (ARRAY['pothole','graffiti','streetlight','garbage','snow','noise','parks','water'])[1 + i % 8]
            AS service_code,
          CASE WHEN i % 3 = 0 THEN 'closed' ELSE 'open' END AS status,
          timestamptz '2026-01-01' + (i % 300) * interval '1 day' AS requested_at,
          ST_SetSRID(ST_MakePoint(x, y), 4326) AS geom
        FROM (SELECT i,
          CASE WHEN i % 2 = 0 THEN {x0} + random() * {dx_}
               ELSE {cx} + (random() + random() + random() - 1.5) * 0.06 END AS x,
          CASE WHEN i % 2 = 0 THEN {y0} + random() * {dy_}
               ELSE {cy} + (random() + random() + random() - 1.5) * 0.04 END AS y
          FROM generate_series(1, 1000000) AS i) AS s""",
    ),
    "roads": (
        150_000,
        """SELECT i AS id, 'Road ' || i AS name, (ARRAY['local','collector','arterial'])[1 + i % 3] AS class,
          ST_SetSRID(ST_MakeLine(ARRAY(
            SELECT ST_MakePoint(x + k * dx + (random() - 0.5) * 0.0002, y + k * dy + (random() - 0.5) * 0.0002)
            FROM generate_series(0, 8) AS k WHERE i > 0)), 4326) AS geom
        FROM (SELECT i, {x0} + random() * {dx_} AS x, {y0} + random() * {dy_} AS y,
          (random() - 0.5) * 0.0015 AS dx, (random() - 0.5) * 0.001 AS dy
          FROM generate_series(1, 150000) AS i) AS s""",
    ),
    "facilities": (
        20_000,
        """SELECT i AS id, 'Facility ' || i AS name,
          (ARRAY['library','fire_station','recreation_centre','school','clinic','park','market','transit'])
            [1 + i % 8] AS category,
          (ARRAY['Mo-Fr 09:00-17:00', 'Mo-Su 08:00-22:00', '24/7', 'Mo-Sa 10:00-18:00; Su off'])[1 + i % 4]
            AS opening_hours,
          ST_SetSRID(ST_MakePoint({x0} + random() * {dx_}, {y0} + random() * {dy_}), 4326) AS geom
        FROM generate_series(1, 20000) AS i""",
    ),
}

MANIFESTS: dict[str, dict[str, Any]] = {
    "parcels": {"public_fields": ["id", "roll_number", "land_use", "area_m2"], "category": "property"},
    "service_requests": {
        "public_fields": ["id", "request_id", "service_code", "status", "requested_at"],
        "category": "service_requests",
    },
    "roads": {"public_fields": ["id", "name", "class"], "category": "infrastructure"},
    "facilities": {
        "public_fields": ["id", "name", "category", "opening_hours"],
        "category": "facilities",
        "category_field": "category",
        "opening_hours_field": "opening_hours",
        "serves_people": True,
    },
}


def build(conn: Any) -> None:
    """Create the four tables (when missing or short), with a primary key and a GiST index each."""
    from psycopg import sql

    numbers = {"x0": X0, "dx_": DX, "y0": Y0, "dy_": DY, "cx": DOWNTOWN[0], "cy": DOWNTOWN[1]}
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
    for name, (rows, select) in TABLES.items():
        table = sql.Identifier(SCHEMA, name)
        found = conn.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", (f"{SCHEMA}.{name}",)
        ).fetchone()
        if found is not None and found[0] == rows:
            continue
        print(f"building {SCHEMA}.{name} ({rows:,} rows) with plain SQL...", file=sys.stderr)
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        conn.execute("SELECT setseed(%s)", (SEED,))
        body = sql.SQL(select).format(**{k: sql.Literal(v) for k, v in numbers.items()})
        conn.execute(sql.SQL("CREATE TABLE {} AS {}").format(table, body))
        keyed_and_indexed(conn, name)


def keyed_and_indexed(conn: Any, name: str) -> None:
    """What a GIS team gives a table it built: a primary key on `id`, a GiST index on `geom`, statistics."""
    from psycopg import sql

    table = sql.Identifier(SCHEMA, name)
    conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (id)").format(table))
    conn.execute(sql.SQL("CREATE INDEX {} ON {} USING gist (geom)").format(sql.Identifier(f"{name}_geom"), table))
    conn.execute(sql.SQL("VACUUM ANALYZE {}").format(table))


def manifest(name: str) -> dict[str, Any]:
    """The manifest that publishes one table in place."""
    extra = dict(MANIFESTS[name])
    return {
        "id": name,
        "title": {"en": f"{name.replace('_', ' ').capitalize()} (synthetic)"},
        "description": {"en": "Synthetic benchmark table, built with plain SQL and published in place."},
        "department": "Benchmarks",
        "license": {"name": "Public domain (synthetic)"},
        "source": {"table": f"{SCHEMA}.{name}"},
        "id_field": "id",
        "min_zoom": 0,
        "max_zoom": 22,
        **extra,
    }


def publish(data_dir: Path, url: str) -> None:
    """Publish every table in place through the command line (`geoserver load` with a table manifest)."""
    folder = data_dir / "in-place-manifests"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in TABLES:
        path = folder / f"{name}.yaml"
        path.write_text(json.dumps(manifest(name), indent=2))  # JSON is YAML
        paths.append(str(path))
    env = {**os.environ, "GEOSERVER_DATABASE_URL": url}
    subprocess.run([sys.executable, "-m", "geoserver", "load", *paths], env=env, check=True)


OPTIMIZED = "parcels_optimized"  # a copy of the parcels, rows in the same order, published with --optimize


def optimized_parcels(data_dir: Path, url: str) -> str:
    """`city.parcels_optimized`: the parcels copied as built (same rows, same order on disk, same index), published
    in place with `geoserver publish --optimize` as a user would; returns the layer id."""
    import psycopg
    from psycopg import sql

    table, source = sql.Identifier(SCHEMA, OPTIMIZED), sql.Identifier(SCHEMA, "parcels")
    with psycopg.connect(url, autocommit=True) as conn:
        done = conn.execute(
            "SELECT 1 FROM geoserver.layers WHERE id = %s AND geometry_3857_column IS NOT NULL "
            "AND to_regclass(format('%%I.%%I', table_schema, table_name)) IS NOT NULL",
            (OPTIMIZED,),
        ).fetchone()
        if done is not None:
            return OPTIMIZED
        print(f"copying {SCHEMA}.parcels to {SCHEMA}.{OPTIMIZED} and optimizing it...", file=sys.stderr)
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        conn.execute(sql.SQL("CREATE TABLE {} AS SELECT * FROM {} ORDER BY ctid").format(table, source))
        keyed_and_indexed(conn, OPTIMIZED)
    path = data_dir / "in-place-manifests" / f"{OPTIMIZED}.yaml"
    path.write_text(json.dumps({**manifest("parcels"), "id": OPTIMIZED, "source": {"table": f"{SCHEMA}.{OPTIMIZED}"}}))
    env = {**os.environ, "GEOSERVER_DATABASE_URL": url}
    subprocess.run([sys.executable, "-m", "geoserver", "publish", str(path), "--optimize"], env=env, check=True)
    return OPTIMIZED


def in_place_database(data_dir: Path) -> tuple[str, Any]:
    """The bench data directory's cluster with the four tables built and published in place: (TCP URL, cluster)."""
    import psycopg

    from geoserver.cluster import EmbeddedCluster

    cluster = EmbeddedCluster(data_dir)
    cluster.ensure_started()
    url = f"postgresql://geoserver@127.0.0.1:{cluster.running_port()}/geoserver"
    env = {**os.environ, "GEOSERVER_DATABASE_URL": url}
    subprocess.run([sys.executable, "-m", "geoserver", "migrate"], env=env, check=True, capture_output=True)
    with psycopg.connect(url, autocommit=True) as conn:
        build(conn)
        published = conn.execute(
            "SELECT count(*) FROM geoserver.layers WHERE source_kind = 'table' AND table_schema = %s AND id = ANY(%s)",
            (SCHEMA, list(TABLES)),
        ).fetchone()
    if published is None or published[0] < len(TABLES):
        publish(data_dir, url)
    return url, cluster
