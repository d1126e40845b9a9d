"""The catalogue as the running app holds it: every demo layer, and new loads picked up without a restart."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from layers.catalogue.visibility import ANONYMOUS
from layers.ingest.load import load_file
from tests.support.layers import drop_layer, manifest, point, write_geojson


def test_the_app_holds_every_demo_layer_with_its_category(client: TestClient, demo_city: dict[str, str]) -> None:
    registry = client.app.state.geoserver.registry  # type: ignore[attr-defined]
    visible = {layer.id: layer.category for layer in registry.visible(ANONYMOUS)}
    assert {k: v for k, v in visible.items() if k in demo_city} == demo_city
    assert all(registry.resolve(k, ANONYMOUS).is_demo for k in demo_city)


def test_a_load_and_a_removal_are_picked_up_by_the_running_app(
    client: TestClient, database_url: str, tmp_path: Path
) -> None:
    state = client.app.state.geoserver  # type: ignore[attr-defined]
    path = write_geojson(tmp_path / "new.geojson", [({"name": "fresh"}, point(-114.0, 51.0))])
    load_file(database_url, manifest("loaded while serving", ["name"]), path)
    try:
        _wait_for(lambda: "loaded while serving" in {layer.id for layer in state.registry.visible(ANONYMOUS)})
    finally:
        drop_layer(database_url, "loaded while serving")
    _wait_for(lambda: "loaded while serving" not in {layer.id for layer in state.registry.visible(ANONYMOUS)})


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the running app did not pick up the change"
        time.sleep(0.05)


def test_direct_edits_keep_the_served_feature_count_exact(
    client: TestClient, database_url: str, tmp_path: Path
) -> None:
    import psycopg

    path = write_geojson(tmp_path / "c.geojson", [({"name": "one"}, point(-114.0, 51.0))])
    load_file(database_url, manifest("counted while serving", ["name"]), path)
    state = client.app.state.geoserver  # type: ignore[attr-defined]
    try:
        _wait_for(lambda: "counted while serving" in {layer.id for layer in state.registry.visible(ANONYMOUS)})
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                'INSERT INTO layer_data."counted while serving" (fid, name, geom) '
                "VALUES (2, 'two', ST_SetSRID(ST_MakePoint(-114.0, 51.0), 4326))"
            )
        _wait_for(lambda: state.registry.resolve("counted while serving", ANONYMOUS).feature_count == 2)
        assert client.get("/collections/counted%20while%20serving/items").json()["numberMatched"] == 2
    finally:
        drop_layer(database_url, "counted while serving")
