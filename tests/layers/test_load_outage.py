"""PostgreSQL restarts while a layer's new file is being copied in: the load fails with a "retry" error (a 503 for an
upload), the previous version stays whole, and nothing of the half-done load is left behind.

The cluster is this test's own, so stopping it touches nothing else.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import psycopg
import pytest

from layers.catalogue.migrate import upgrade
from layers.errors import DatabaseUnavailable
from layers.ingest.publish import Job, publish_in_subprocess
from tests.support.cluster import running_cluster
from tests.support.layers import manifest, point, write_geojson

POINTS = 300_000  # enough for the copy to last while the database restarts


def _many_points(path: Path) -> Path:
    features = ",".join(
        f'{{"type":"Feature","properties":{{"name":"p{i}"}},"geometry":{{"type":"Point",'
        f'"coordinates":[{-114.3 + (i % 1000) / 2500},{50.9 + (i // 1000) / 1000}]}}}}'
        for i in range(POINTS)
    )
    path.write_text(f'{{"type":"FeatureCollection","features":[{features}]}}')
    return path


def test_a_database_restart_during_a_load_keeps_the_previous_version(tmp_path: Path) -> None:
    layer = manifest("restarted", ["name"], source={"file": "v1.geojson"})
    first = write_geojson(tmp_path / "v1.geojson", [({"name": "the first version"}, point(-114.06, 51.05))])
    big = _many_points(tmp_path / "v2.geojson")
    with running_cluster("geoserver-load-outage-") as cluster:
        url = cluster.url()
        upgrade(url)
        publish_in_subprocess(url, [Job(layer, file=first)])
        copying = threading.Event()
        failure: list[BaseException] = []

        def report(layer_id: str, stage: str, done: int, total: int) -> None:
            if stage == "copy" and done > 0:
                copying.set()

        def load() -> None:
            try:
                publish_in_subprocess(url, [Job(layer, file=big)], progress=report)
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                failure.append(exc)

        loading = threading.Thread(target=load)
        loading.start()
        assert copying.wait(120), "the copy never started"
        cluster.stop()
        cluster.ensure_started()
        loading.join(120)
        assert not loading.is_alive()
        assert failure and isinstance(failure[0], DatabaseUnavailable), failure
        assert "retry" in failure[0].message and failure[0].retry_after_s
        with psycopg.connect(url) as conn:
            rows = conn.execute('SELECT name FROM layer_data."restarted"').fetchall()
            version = conn.execute("SELECT version FROM geoserver.layers WHERE id = 'restarted'").fetchone()
            staging = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'layer_data' AND tablename LIKE 'load_%'"
            ).fetchone()
        assert rows == [("the first version",)] and version == (1,) and staging == (0,)
        # And the next load, with the database back, goes through.
        done = publish_in_subprocess(url, [Job(layer, file=big)])
        assert [(r.feature_count, r.version) for r in done] == [(POINTS, 2)]
    assert json.loads(first.read_text())["features"]  # the files stay the test's own


@pytest.mark.parametrize("state", [None, "57P01", "08006"])
def test_a_lost_database_is_told_apart_from_a_bad_file(monkeypatch: pytest.MonkeyPatch, state: str | None) -> None:
    import queue

    from layers.ingest import publish

    class Lost(psycopg.OperationalError):
        sqlstate = state

    def fails(*args: object, **kwargs: object) -> None:
        raise Lost("server closed the connection unexpectedly")

    monkeypatch.setattr(publish, "_run", fails)
    out: queue.Queue[tuple[str, tuple[str, str, None, str, None]]] = queue.Queue()
    publish._child(out, "postgresql://unused", [Job(manifest("lost", ["name"]))], None)
    kind, payload = out.get_nowait()
    assert kind == "error" and payload[0] == "DatabaseUnavailable"
    error = publish._error(*payload, named=True)
    assert isinstance(error, DatabaseUnavailable) and error.retry_after_s == publish.RETRY_AFTER_S
