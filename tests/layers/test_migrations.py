"""The catalogue's migrations go down and up again, each leaving the change trigger it wrote."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from geoserver.cluster import EmbeddedCluster
from layers.catalogue.migrate import downgrade, upgrade

SCRATCH = "migrations_scratch"
_TRIGGER = "SELECT prosrc FROM pg_proc WHERE proname = 'announce_layer_change'"
_TABLES = "SELECT count(*) FROM pg_tables WHERE schemaname = 'geoserver'"
_FUNCTIONS = "SELECT count(*) FROM pg_proc WHERE proname = 'latest_version'"
_DELETED_INDEX = "SELECT count(*) FROM pg_indexes WHERE indexname = 'feature_history_deleted'"
_PLANS_WITH_INDEX = (
    "SELECT count(*) FROM pg_proc WHERE proname = 'latest_version' AND 'enable_seqscan=off' = ANY(proconfig)"
)


def _database(url: str, name: str) -> str:
    """The same cluster's URL, naming another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture
def scratch_url(pg_cluster: EmbeddedCluster) -> Iterator[str]:
    """An empty database of its own in the test cluster, dropped afterwards."""
    admin = _database(pg_cluster.url(), "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH}")
        conn.execute(f"CREATE DATABASE {SCRATCH}")
    try:
        yield _database(pg_cluster.url(), SCRATCH)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")


def _state(url: str) -> tuple[str | None, int]:
    with psycopg.connect(url) as conn:
        trigger = conn.execute(_TRIGGER).fetchone()
        tables = conn.execute(_TABLES).fetchone()
    return (trigger[0] if trigger else None), int(tables[0] if tables else 0)


def _count(url: str, query: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def test_every_migration_goes_down_and_up_again(scratch_url: str) -> None:
    upgrade(scratch_url)
    head_trigger, head_tables = _state(scratch_url)
    assert head_trigger is not None and "'xact', pg_current_xact_id()" in head_trigger  # 0008: names its transaction
    assert _count(scratch_url, _FUNCTIONS) == 1 and _count(scratch_url, _DELETED_INDEX) == 1  # 0009, 0010
    assert "SELECT ST_Extent(geom), count(*) INTO box, delta FROM new_rows;" in head_trigger  # 0011: a kept plan
    assert _count(scratch_url, _PLANS_WITH_INDEX) == 1  # 0012
    downgrade(scratch_url, "0010")
    assert _count(scratch_url, _FUNCTIONS) == 1 and _count(scratch_url, _PLANS_WITH_INDEX) == 0
    assert _count(scratch_url, _FUNCTIONS + " AND prosrc LIKE '%max(version)%'") == 1  # 0009's body is back
    before_plans, _ = _state(scratch_url)
    assert before_plans is not None and "INTO box, delta FROM new_rows" not in before_plans and "'xact'" in before_plans
    downgrade(scratch_url, "0007")
    assert _count(scratch_url, _FUNCTIONS) == 0 and _count(scratch_url, _DELETED_INDEX) == 0
    before_xact, _ = _state(scratch_url)
    assert before_xact is not None and "IF delta <> 0 THEN" in before_xact and "xact" not in before_xact  # 0006's
    downgrade(scratch_url, "0005")
    counted, _ = _state(scratch_url)
    assert counted is not None and "delta" in counted and "IF delta <> 0 THEN" not in counted  # back to 0003's
    downgrade(scratch_url, "0002")
    announced, _ = _state(scratch_url)
    assert announced is not None and "delta" not in announced  # 0002's: announces, counts nothing
    downgrade(scratch_url, "base")
    assert _state(scratch_url) == (None, 0)
    upgrade(scratch_url)
    assert _state(scratch_url) == (head_trigger, head_tables)


_SCANS = (
    "SELECT coalesce((SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'feature_history'), 0), "
    "pg_stat_get_xact_numscans('geoserver.feature_history_version'::regclass)"
)
_HISTORY = (
    "INSERT INTO geoserver.feature_history (layer_id, fid, version, op, attributes, actor) "
    "SELECT 'layer', 'f' || i, 1, 'create', '{}', 'test' FROM generate_series(1, 5000) AS i"
)


def test_the_latest_version_is_read_through_its_index_after_history_grew(scratch_url: str) -> None:
    """A new database plans the lookup while history is empty, and a connection keeps that plan: it must be the
    index's, or every edit reads the layer's whole history (half the edits benchmark's speed on a new cluster)."""
    upgrade(scratch_url)
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        for _ in range(8):  # planned on an empty history, and kept (PostgreSQL settles on one plan after five runs)
            conn.execute("SELECT geoserver.latest_version('layer', 'f1')")
        conn.execute(_HISTORY)
        with conn.transaction():  # counts not yet reported: read before and after, in one transaction
            before = conn.execute(_SCANS).fetchone()
            for _ in range(3):
                assert conn.execute("SELECT geoserver.latest_version('layer', 'f7')").fetchone() == (1,)
            after = conn.execute(_SCANS).fetchone()
    assert before is not None and after is not None
    # No scan of the whole table; three lookups through (layer_id, fid, version).
    assert (after[0] - before[0], after[1] - before[1]) == (0, 3)
