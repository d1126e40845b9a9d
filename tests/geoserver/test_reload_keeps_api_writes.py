"""Loading a layer's file again never replaces features written through the API since its last load (edits, 311
requests), unless asked to: the command line names the layer and loads nothing, and the demo refresh keeps it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient

from layers.errors import IngestError
from layers.ingest.in_place import publish_table
from layers.ingest.load import load_file
from layers.ingest.publish import api_writes
from tests.support.access import issue
from tests.support.layers import drop_layer, manifest, point, write_geojson
from tests.support.uploads import bearer

LAYER = "reload keeps edits"
L = quote(LAYER, safe="")


def _names(client: TestClient) -> list[str]:
    answer = client.get(f"/collections/{L}/items")
    assert answer.status_code == 200, answer.text
    return sorted(f["properties"]["name"] for f in answer.json()["features"])


def _until_served(client: TestClient, names: list[str]) -> None:
    deadline = time.monotonic() + 15
    while client.get(f"/collections/{L}").status_code != 200 or _names(client) != names:
        assert time.monotonic() < deadline, "the loaded layer never showed"
        time.sleep(0.1)


def test_a_load_does_not_replace_features_written_since_the_last_one(
    client: TestClient, database_url: str, tmp_path: Path
) -> None:
    layer = manifest(LAYER, ["name"], source={"file": "stops.geojson"})
    path = write_geojson(tmp_path / "stops.geojson", [({"name": "from the file"}, point(-114.06, 51.05))])
    load_file(database_url, layer, path)
    try:
        _until_served(client, ["from the file"])
        assert api_writes(database_url, [LAYER]) == {}
        staff = issue(database_url, "gis@reload", staff=True)
        fid = client.get(f"/collections/{L}/items").json()["features"][0]["id"]
        edited = client.patch(
            f"/collections/{L}/items/{fid}",
            json={"properties": {"name": "edited"}},
            headers={**bearer(staff), "Content-Type": "application/merge-patch+json"},
        )
        assert edited.status_code == 200, edited.text
        assert api_writes(database_url, [LAYER]) == {LAYER: 1}

        with pytest.raises(IngestError, match=r"1 feature\(s\) were written through the API"):
            load_file(database_url, layer, path, replace_edits=False)
        with psycopg.connect(database_url, autocommit=True) as conn:  # nor a table published in its place
            conn.execute(
                "DROP TABLE IF EXISTS public.reload_keeps; CREATE TABLE public.reload_keeps AS SELECT 1 AS id, "
                "'a table' AS name, ST_SetSRID(ST_MakePoint(-114.06, 51.05), 4326)::geometry(Point, 4326) AS geom"
            )
        in_place = manifest(LAYER, ["id", "name"], id_field="id", source={"table": "public.reload_keeps"})
        with pytest.raises(IngestError, match=r"1 feature\(s\) were written through the API"):
            publish_table(database_url, in_place, replace_edits=False)
        manifest_path = tmp_path / "stops.yaml"
        manifest_path.write_text(json.dumps(layer.model_dump(mode="json")))
        env = {**os.environ, "GEOSERVER_DATABASE_URL": database_url}
        refused = subprocess.run(
            [sys.executable, "-m", "geoserver", "load", str(manifest_path)], env=env, capture_output=True, text=True
        )
        said = " ".join(refused.stderr.split())  # the console wraps long lines
        assert refused.returncode != 0
        assert f"{LAYER} (1)" in said and "nothing was loaded" in said and "--replace-edits" in said, said
        assert _names(client) == ["edited"]  # nothing was loaded over it

        replaced = subprocess.run(
            [sys.executable, "-m", "geoserver", "load", str(manifest_path), "--replace-edits"],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        assert replaced.returncode == 0, replaced.stderr
        _until_served(client, ["from the file"])
        assert api_writes(database_url, [LAYER]) == {}  # counted from the last load on
        load_file(database_url, layer, path, replace_edits=False)
    finally:
        drop_layer(database_url, LAYER)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS public.reload_keeps")
