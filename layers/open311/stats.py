"""Public measures of 311 service: requests and median hours to close per ward, service code and month, computed in
PostgreSQL from the published layer. A cell of fewer than MIN_CELL requests is never shown, and a median is shown
only when at least MIN_CELL closed requests make it, so no single resident's request can be singled out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql

from layers.errors import InvalidParameter
from layers.open311.catalogue import ServiceCatalogue
from layers.open311.places import RequestsLayer
from layers.sqlcompose import Slot, render

MIN_CELL = 5
DIMENSIONS = ("ward", "service_code", "month")
CITY_TIME_ZONE = "America/Edmonton"  # months are the City's calendar months


@dataclass(frozen=True)
class Stats:
    """The shown cells (each a dict: the dimensions, `requests`, `median_hours_to_close`) and how many were not."""

    by: tuple[str, ...]
    cells: list[dict[str, Any]]
    suppressed_cells: int


def check_dimensions(names: list[str] | None) -> tuple[str, ...]:
    """`by`: some of ward, service_code and month, each once, in the order given (default: service_code)."""
    if not names:
        return ("service_code",)
    if any(n not in DIMENSIONS for n in names) or len(set(names)) != len(names):
        raise InvalidParameter(f"by takes some of {', '.join(DIMENSIONS)}, each once", parameter="by")
    return tuple(names)


_STATEMENT = """
WITH r AS (
    SELECT w.name AS ward, t.{code}::text AS service_code,
           to_char(t.{requested} AT TIME ZONE {zone}, 'YYYY-MM') AS month,
           CASE WHEN t.{status} = 'closed' AND t.{closed} >= t.{requested}
                THEN extract(epoch FROM t.{closed} - t.{requested}) / 3600 END AS hours
    FROM {table} AS t
    LEFT JOIN LATERAL (SELECT wd.{ward_name}::text AS name FROM {wards} AS wd WHERE ST_Intersects(wd.{ward_g}, t.{g})
                       ORDER BY wd.{ward_name} LIMIT 1) AS w ON true
    WHERE t.{code} = ANY({codes})
),
cells AS (
    SELECT {keys}, count(*) AS requests, count(hours) AS closed,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY hours) AS median
    FROM r GROUP BY {keys}
)
SELECT 0 AS kind, {keys}, requests, CASE WHEN closed >= {least} THEN round(median::numeric, 1) END AS median
FROM cells WHERE requests >= {least}
UNION ALL  -- one last row: how many cells were held back (never which, nor their counts)
SELECT 1, {nulls}, count(*), NULL FROM cells WHERE requests < {least}
ORDER BY kind, {keys}
"""


async def compute(
    conn: AsyncConnection[Any], catalogue: ServiceCatalogue, where: RequestsLayer, by: tuple[str, ...]
) -> Stats:
    """The measures grouped by `by`."""
    keys = sql.SQL(", ").join(sql.Identifier(name) for name in by)
    statement = sql.SQL(_STATEMENT).format(
        code=where.column("code"), requested=where.column("requested"), zone=sql.Literal(CITY_TIME_ZONE),
        status=where.column("status"), closed=where.column("closed"), table=where.layer.table,
        ward_name=sql.Identifier(where.ward_name), wards=where.wards.table,
        ward_g=sql.Identifier(where.wards.geometry_column), g=where.geom, codes=Slot("codes"), keys=keys,
        least=sql.Literal(MIN_CELL), nulls=sql.SQL(", ").join(sql.SQL("NULL::text") for _ in by),
    )  # fmt: skip
    rows = await (await conn.execute(render(statement), {"codes": catalogue.codes})).fetchall()
    *shown, (_, *_, suppressed, _) = rows
    cells = [
        {**dict(zip(by, row[1 : 1 + len(by)], strict=True)), "requests": row[1 + len(by)],
         "median_hours_to_close": float(row[2 + len(by)]) if row[2 + len(by)] is not None else None}
        for row in shown
    ]  # fmt: skip
    return Stats(by, cells, int(suppressed))
