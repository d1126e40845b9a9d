"""What makes a table published in place as fast as a managed one, added to the table itself: no data is copied.

`optimize` adds a stored generated EPSG:3857 column (`<geometry>_3857`, computed by PostgreSQL from the 4326
geometry, so edits keep it current by themselves) and its GiST index, puts the rows in the index's order, then
records it in the catalogue (`geometry_3857_column`); every server reloads the layer and its tile plans use it. Four
steps, each reporting progress: the column (a table rewrite under an exclusive lock: reads of the table wait while it
runs, 8 s for 1,000,000 points on the benchmark machine; progress estimated from the database's growth), the index
(built CONCURRENTLY: reads and writes go on; progress from `pg_stat_progress_create_index`, which gave no block
counts for the GiST build here, so the bar shows the step rather than a fraction; 5 s), ANALYZE, and, once the
column is recorded, the order (`CLUSTER` on that index: a second rewrite under an exclusive lock, which rebuilds
every index of the table, 1.0 s for 200,000 parcels and 4.4 s for 1,000,000 points with the column and three
indexes; progress as for the column). A step that fails before the record leaves the layer served as before; a
failed order leaves it reading the column, and a run again orders the rows.

The order puts the rows of a tile on a few pages instead of all over the table: on a copy of the in-place City's
200,000 parcels (written in no spatial order) put in the order of a GiST index, cold z12-z14 tiles came at 436-507 a
second against 339-360 for the table as built (three alternating pairs, one worker). It decays as rows are added or
moved; `CLUSTER <table>` puts it back (PostgreSQL remembers the index), under the same lock.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from layers.catalogue.journal import announce, audit
from layers.catalogue.models import LAYERS_TABLE
from layers.catalogue.records import IN_PLACE
from layers.errors import IngestError
from layers.sqlcompose import Slot, render

Progress = Callable[[str, int, int], None]  # stage, done, total
APPLICATION = "geoserver optimize"  # how the optimizing connection shows in pg_stat_activity (`layers show`)
SUFFIX = "_3857"
POLL_S = 0.5

_LAYER = render(
    sql.SQL(
        "SELECT source_kind, table_schema, table_name, geometry_column, geometry_3857_column, "
        "to_regclass(format('%I.%I', table_schema, table_name))::oid, "
        "(SELECT relkind FROM pg_class WHERE oid = to_regclass(format('%I.%I', table_schema, table_name))) "
        "FROM {} WHERE id = {}"
    ).format(LAYERS_TABLE, Slot("id"))
)
_COLUMN = render(
    sql.SQL(
        "SELECT a.attgenerated, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a LEFT JOIN pg_attrdef d "
        "ON d.adrelid = a.attrelid AND d.adnum = a.attnum WHERE a.attrelid = {} AND a.attname = {} "
        "AND NOT a.attisdropped"
    ).format(Slot("oid"), Slot("column"))
)
# Read before the rewrite starts (the size functions wait for the table's lock, which the rewrite holds). The
# rewrite writes a new copy of the table and of its indexes beside the old ones: their size is the estimate's total.
_SIZES = render(sql.SQL("SELECT pg_database_size(current_database()), pg_total_relation_size({})").format(Slot("oid")))
_DATABASE_SIZE = render(sql.SQL("SELECT pg_database_size(current_database())"))
_INDEX_PROGRESS = render(
    sql.SQL(
        "SELECT blocks_done, blocks_total, tuples_done, tuples_total FROM pg_stat_progress_create_index "
        "WHERE relid = {}"
    ).format(Slot("oid"))
)
_RUNNING = render(
    sql.SQL(
        "SELECT left(query, 60) FROM pg_stat_activity WHERE application_name = {} AND state = 'active' "
        "AND pid <> pg_backend_pid()"
    ).format(Slot("name"))
)
_CLUSTERED_ON = render(
    sql.SQL(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indisclustered "
        "AND i.indrelid = to_regclass(format('%I.%I', {}::text, {}::text))"
    ).format(Slot("schema"), Slot("table"))
)
_INDEX_VALID = render(
    sql.SQL(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = {} AND c.relname = {}"
    ).format(Slot("oid"), Slot("index"))
)
_RECORD = render(
    sql.SQL(
        "UPDATE {} SET geometry_3857_column = {}, version = version + 1, updated_at = now() WHERE id = {} "
        "RETURNING version"
    ).format(LAYERS_TABLE, Slot("column"), Slot("id"))
)


def stored_column_name(geometry_column: str) -> str:
    """The name of the stored 3857 column beside a geometry column (within PostgreSQL's 63 bytes)."""
    name = geometry_column + SUFFIX
    if len(name.encode()) <= 63:
        return name
    return geometry_column.encode()[:50].decode(errors="ignore") + "_" + _digest(geometry_column) + SUFFIX


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def optimize(database_url: str, layer_id: str, *, progress: Progress | None = None, actor: str = "cli") -> str | None:
    """Add the stored 3857 column and its index to a layer's table, record it, then order the rows by that index;
    returns the column (None if the layer already had one: its rows are then ordered if they are not)."""
    report = progress or (lambda stage, done, total: None)
    with psycopg.connect(database_url, autocommit=True, application_name=f"{APPLICATION} {layer_id}"[:63]) as conn:
        kind, schema, name, geometry, stored, oid, relkind = _layer(conn, layer_id)
        plain_table = kind == IN_PLACE and relkind == "r"
        table = sql.Identifier(schema, name)
        if stored is not None:
            if plain_table and _ordered_by(conn, schema, name) is None:  # optimized before the order step existed
                _order_rows(database_url, conn, oid, report, table, stored_index_name(schema, name, stored))
            return None
        if not plain_table:
            raise IngestError(
                f"layer {layer_id!r}: only a table published in place can be optimized, not a view or a partitioned "
                "table"
            )
        column = stored_column_name(geometry)
        if not _has_stored_column(conn, oid, column, geometry):
            _watched(database_url, oid, report, "column", lambda: _add_column(conn, table, column, geometry))
        index = stored_index_name(schema, name, column)
        _build_index(database_url, conn, oid, report, (schema, name, column), index)
        report("analyze", 0, 1)
        conn.execute(render(sql.SQL("ANALYZE {}").format(table)))
        report("analyze", 1, 1)
        with conn.transaction():
            row = conn.execute(_RECORD, {"column": column, "id": layer_id}).fetchone()
            version = int(row[0]) if row else 0
            conn.execute(*audit(actor, "optimize", layer_id, {"geometry_3857_column": column, "version": version}))
            conn.execute(*announce({"layer": layer_id, "version": version, "kind": "reload"}))
        # Last, and on its own: the tiles already read the column if ordering the rows fails (a run again retries).
        _order_rows(database_url, conn, oid, report, table, index)
    return column


def stored_index_name(schema: str, name: str, column: str) -> str:
    """The name of the stored column's GiST index (within PostgreSQL's 63 bytes)."""
    return f"{name[:40]}_{_digest(schema + '.' + name + column)}{SUFFIX}_gist"


def _build_index(
    database_url: str,
    conn: psycopg.Connection[Any],
    oid: int,
    report: Progress,
    where: tuple[str, str, str],
    index: str,
) -> None:
    """The GiST index of the stored column (`where`: schema, table, column), built concurrently; one left invalid by
    an interrupted run is dropped and built again."""
    schema, name, column = where
    build = render(
        sql.SQL("CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} USING gist ({})").format(
            sql.Identifier(index), sql.Identifier(schema, name), sql.Identifier(column)
        )
    )
    _watched(database_url, oid, report, "index", lambda: conn.execute(build))
    valid = conn.execute(_INDEX_VALID, {"oid": oid, "index": index}).fetchone()
    if valid is not None and not valid[0]:
        conn.execute(render(sql.SQL("DROP INDEX CONCURRENTLY {}").format(sql.Identifier(schema, index))))
        _watched(database_url, oid, report, "index", lambda: conn.execute(build))


def _order_rows(
    database_url: str, conn: psycopg.Connection[Any], oid: int, report: Progress, table: sql.Identifier, index: str
) -> None:
    try:
        _watched(database_url, oid, report, "order", lambda: _order(conn, table, sql.Identifier(index)))
    except IngestError as exc:
        raise IngestError(
            f"the tiles read the stored column, but the rows could not be ordered ({exc}); run "
            "`geoserver publish --optimize` again to retry"
        ) from exc


def _layer(conn: psycopg.Connection[Any], layer_id: str) -> tuple[Any, ...]:
    row = conn.execute(_LAYER, {"id": layer_id}).fetchone()
    if row is None:
        raise IngestError(f"no layer named {layer_id!r}")
    if row[5] is None:
        raise IngestError(f"layer {layer_id!r}: its table {row[1]}.{row[2]} is gone")
    return tuple(row)


def _has_stored_column(conn: psycopg.Connection[Any], oid: int, column: str, geometry: str) -> bool:
    """True when an earlier, interrupted run already added the column; an unrelated column of that name is refused."""
    found = conn.execute(_COLUMN, {"oid": oid, "column": column}).fetchone()
    if found is None:
        return False
    generated, expression = found
    if generated == "s" and expression and "st_transform" in expression.lower() and "3857" in expression:
        return True
    raise IngestError(f"the table already has a column {column!r} that is not a stored EPSG:3857 copy of {geometry!r}")


def _add_column(conn: psycopg.Connection[Any], table: sql.Identifier, column: str, geometry: str) -> None:
    _rewrite(
        conn,
        sql.SQL(
            "ALTER TABLE {} ADD COLUMN {} geometry(Geometry, 3857) GENERATED ALWAYS AS (ST_Transform({}, 3857)) STORED"
        ).format(table, sql.Identifier(column), sql.Identifier(geometry)),
    )


def _order(conn: psycopg.Connection[Any], table: sql.Identifier, index: sql.Identifier) -> None:
    _rewrite(conn, sql.SQL("CLUSTER {} USING {}").format(table, index))


def _rewrite(conn: psycopg.Connection[Any], statement: sql.Composable) -> None:
    """A statement that rewrites the table under an exclusive lock, waiting at most 10 s for the lock rather than
    queueing every reader behind it for longer. Two statements in one transaction (no value is bound), so the
    timeout ends with it, whatever happens."""
    with conn.transaction():
        conn.execute(render(sql.SQL("SET LOCAL lock_timeout = '10s'; {}").format(statement)))


def _watched(database_url: str, oid: int, report: Progress, stage: str, work: Callable[[], Any]) -> None:
    """Run one step in a thread while this one reports its progress, read from the database every POLL_S."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread below
            failure.append(exc)

    worker = threading.Thread(target=run, name=f"optimize {stage}", daemon=True)
    with psycopg.connect(database_url, autocommit=True) as watcher:
        start_size, table_size = watcher.execute(_SIZES, {"oid": oid}).fetchone() or (0, 1)
        worker.start()
        while worker.is_alive():
            done, total = _progress(watcher, oid, stage, int(start_size), max(1, int(table_size)))
            report(stage, done, total)
            worker.join(POLL_S)
    if failure:
        raise IngestError(f"{stage} step failed: {str(failure[0]).splitlines()[0][:300]}") from failure[0]
    report(stage, 1, 1)


def _progress(
    watcher: psycopg.Connection[Any], oid: int, stage: str, start_size: int, table_size: int
) -> tuple[int, int]:
    """How far a step is: the index build as PostgreSQL reports it; the rewrite estimated from the database's
    growth against the size of the table and its indexes (the new copies are written beside the old ones)."""
    if stage == "index":
        row = watcher.execute(_INDEX_PROGRESS, {"oid": oid}).fetchone()
        if row is None:
            return 0, 1
        blocks_done, blocks_total, tuples_done, tuples_total = row
        return (int(tuples_done), int(tuples_total)) if tuples_total else (int(blocks_done), max(1, int(blocks_total)))
    grown = int((watcher.execute(_DATABASE_SIZE).fetchone() or (start_size,))[0]) - start_size
    return min(max(0, grown), table_size - 1), table_size


def ordered_by(database_url: str, schema: str, table: str) -> str | None:
    """The index whose order the table's rows were last put in (`CLUSTER`), or None."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return _ordered_by(conn, schema, table)


def _ordered_by(conn: psycopg.Connection[Any], schema: str, table: str) -> str | None:
    row = conn.execute(_CLUSTERED_ON, {"schema": schema, "table": table}).fetchone()
    return str(row[0]) if row else None


def optimizing(database_url: str, layer_id: str) -> str | None:
    """What an optimization of the layer running right now is doing, as pg_stat_activity shows it (else None)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(_RUNNING, {"name": f"{APPLICATION} {layer_id}"[:63]}).fetchone()
    return str(row[0]) if row else None
